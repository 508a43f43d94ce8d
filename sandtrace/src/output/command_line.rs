//! An argument list written as one line a reader can paste into a shell: arguments with
//! spaces, quotes or other shell syntax in single quotes, an empty one as `''`.

/// `args` as a shell would read them back; `truncated` adds ` …` (the list was cut).
pub fn command_line<S: AsRef<str>>(args: impl IntoIterator<Item = S>, truncated: bool) -> String {
    let mut line = String::new();
    for (i, arg) in args.into_iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        quote_into(&mut line, arg.as_ref());
    }
    if truncated {
        line.push_str(" …");
    }
    line
}

fn quote_into(line: &mut String, arg: &str) {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%^".contains(c) || !c.is_ascii());
    if plain {
        line.push_str(arg);
        return;
    }
    line.push('\'');
    for c in arg.chars() {
        match c {
            '\'' => line.push_str("'\\''"),
            '\n' => line.push_str("'$'\\n''"),
            c => line.push(c),
        }
    }
    line.push('\'');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_what_a_shell_would_split_or_expand() {
        assert_eq!(
            command_line(["sh", "-c", "command -v -- hhvm"], false),
            "sh -c 'command -v -- hhvm'"
        );
        assert_eq!(
            command_line(["a", "", "it's", "$HOME"], false),
            "a '' 'it'\\''s' '$HOME'"
        );
        assert_eq!(
            command_line(["tar", "-cf", "out.tar"], true),
            "tar -cf out.tar …"
        );
        assert_eq!(command_line(["x\ny"], false), "'x'$'\\n''y'");
        assert_eq!(command_line(Vec::<String>::new(), false), "");
    }
}
