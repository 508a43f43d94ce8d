//! Errors about a policy, rendered like rustc's: what is wrong, where (file:line:column with
//! the source line underlined), and what to do about it.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A policy file's path and text, kept so that positions can be shown with their source line.
pub struct SourceText {
    pub path: PathBuf,
    pub text: String,
}

impl fmt::Debug for SourceText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SourceText").field(&self.path).finish()
    }
}

/// A byte range of a policy file.
#[derive(Clone, Debug)]
pub struct Span {
    pub source: Arc<SourceText>,
    pub range: Range<usize>,
}

/// A resolved position: 1-based line and column (in characters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Span {
    pub fn path(&self) -> &Path {
        &self.source.path
    }

    pub fn position(&self) -> Position {
        let text = &self.source.text;
        let start = self.range.start.min(text.len());
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        Position {
            line: text[..start].matches('\n').count() + 1,
            column: text[line_start..start].chars().count() + 1,
        }
    }

    /// The source line the span starts on and the character range of the span within it
    /// (cut at the end of the line).
    fn line_and_columns(&self) -> (&str, Range<usize>) {
        let text = &self.source.text;
        let start = self.range.start.min(text.len());
        let end = self.range.end.clamp(start, text.len());
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line = text[line_start..line_end].trim_end_matches('\r');
        let first = text[line_start..start].chars().count();
        let width = text[start..end.min(line_end)].chars().count().max(1);
        (line, first..first + width)
    }
}

impl fmt::Display for Span {
    /// `file:line:column`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Position { line, column } = self.position();
        write!(f, "{}:{line}:{column}", self.path().display())
    }
}

/// Where a diagnostic points.
#[derive(Clone, Debug)]
pub enum Location {
    /// A value in a policy file.
    Span(Span),
    /// A whole file (unreadable, empty).
    File(PathBuf),
    /// Nothing to point at (a command-line flag, a default); the message says what it is about.
    Unpositioned,
}

/// A problem with a value, before it is given a location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn at(self, location: Location) -> Diagnostic {
        Diagnostic {
            message: self.message,
            location,
            hint: self.hint,
        }
    }
}

/// One error.
#[derive(Clone, Debug)]
pub struct Diagnostic {
    pub message: String,
    pub location: Location,
    pub hint: Option<String>,
}

impl Diagnostic {
    /// `(line, column)` when the diagnostic points into a file, for ordering and tests.
    pub fn position(&self) -> Option<Position> {
        match &self.location {
            Location::Span(span) => Some(span.position()),
            Location::File(_) | Location::Unpositioned => None,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        match &self.location {
            Location::Span(span) => {
                let (line, columns) = span.line_and_columns();
                let number = span.position().line.to_string();
                let gutter = " ".repeat(number.len());
                // Tabs are shown as one space so that the caret stays under its character.
                let shown: String = line
                    .chars()
                    .map(|c| if c == '\t' { ' ' } else { c })
                    .collect();
                writeln!(f, "{gutter}--> {span}")?;
                writeln!(f, "{gutter} |")?;
                writeln!(f, "{number} | {shown}")?;
                writeln!(
                    f,
                    "{gutter} | {}{}",
                    " ".repeat(columns.start),
                    "^".repeat(columns.len())
                )?;
                if let Some(hint) = &self.hint {
                    writeln!(f, "{gutter} = hint: {hint}")?;
                }
            }
            Location::File(path) => {
                writeln!(f, " --> {}", path.display())?;
                if let Some(hint) = &self.hint {
                    writeln!(f, "  = hint: {hint}")?;
                }
            }
            Location::Unpositioned => {
                if let Some(hint) = &self.hint {
                    writeln!(f, "  = hint: {hint}")?;
                }
            }
        }
        Ok(())
    }
}

/// Every error found in a policy, in file order. Never empty when returned as an `Err`.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    /// `Ok(value)` if nothing was reported, else the diagnostics sorted by position.
    pub fn into_result<T>(mut self, value: T) -> Result<T, Diagnostics> {
        if self.0.is_empty() {
            return Ok(value);
        }
        // Stable: diagnostics without a position keep their order, after the positioned ones.
        self.0.sort_by_key(|d| {
            d.position()
                .map_or((usize::MAX, usize::MAX), |p| (p.line, p.column))
        });
        Err(self)
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(diagnostic: Diagnostic) -> Self {
        Self(vec![diagnostic])
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for diagnostic in &self.0 {
            writeln!(f, "{diagnostic}")?;
        }
        let n = self.0.len();
        write!(
            f,
            "error: policy rejected ({n} error{})",
            if n == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for Diagnostics {}
