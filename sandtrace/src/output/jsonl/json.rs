//! JSON values appended to a byte buffer, spelled exactly as `serde_json` spells them: the
//! pieces the event lines are built from, without a serializer's per-field overhead.

use crate::events::KernelText;

/// How `serde_json` escapes each byte: 0 when it does not, `u` for `\u00XX`, otherwise the
/// letter after the backslash.
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Text written as is: keys, punctuation and fixed fragments of a line.
pub fn raw(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(text.as_bytes());
}

pub fn integer(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

pub fn boolean(out: &mut Vec<u8>, b: bool) {
    raw(out, if b { "true" } else { "false" });
}

/// A quoted JSON string.
pub fn string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    escaped(out, text.as_bytes());
    out.push(b'"');
}

/// A quoted JSON string of kernel text: valid UTF-8 as is, each invalid sequence as U+FFFD.
pub fn kernel_text(out: &mut Vec<u8>, text: KernelText<'_>) {
    out.push(b'"');
    for chunk in text.as_bytes().utf8_chunks() {
        escaped(out, chunk.valid().as_bytes());
        if !chunk.invalid().is_empty() {
            raw(out, "\u{FFFD}");
        }
    }
    out.push(b'"');
}

/// The contents of a string, without quotes. `bytes` is UTF-8: only ASCII bytes are escaped.
fn escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    // Fast path: comms, syscall names and most paths need no escape.
    if !bytes.iter().any(|&b| ESCAPE[usize::from(b)] != 0) {
        out.extend_from_slice(bytes);
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape = ESCAPE[usize::from(b)];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if escape == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let every_ascii: String = (0u8..0x80).map(char::from).collect();
        for text in [
            "",
            "plain /usr/bin/ls",
            "q\"b\\s/",
            "é ünï €😀",
            &every_ascii,
        ] {
            let mut out = Vec::new();
            string(&mut out, text);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(text).unwrap(),
                "escaping {text:?}"
            );
        }
    }

    #[test]
    fn kernel_text_is_lossy_utf8() {
        let bytes: &[u8] = b"a\xffb\xe2\x82\n\"\xc3\xa9";
        let mut out = Vec::new();
        kernel_text(&mut out, crate::events::KernelText::until_nul(bytes));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string(&String::from_utf8_lossy(bytes)).unwrap()
        );
    }

    #[test]
    fn numbers_and_booleans() {
        let mut out = Vec::new();
        integer(&mut out, u64::MAX);
        raw(&mut out, ",");
        integer(&mut out, i64::MIN);
        raw(&mut out, ",");
        boolean(&mut out, false);
        assert_eq!(out, format!("{},{},false", u64::MAX, i64::MIN).as_bytes());
    }
}
