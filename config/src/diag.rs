//! Diagnostics: every problem names `FILE:LINE:COL`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_saphyr::{Location, Spanned};

/// Where something is in which file. Line and column are 1-based; 0 means
/// unknown (a problem with the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
}

impl Position {
    pub fn new(file: &Path, location: Location) -> Position {
        Position { file: file.to_path_buf(), line: location.line(), column: location.column() }
    }

    /// The file as a whole (it could not be read, say).
    pub fn file(file: &Path) -> Position {
        Position { file: file.to_path_buf(), line: 0, column: 0 }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
        }
    }
}

/// A validated item with the position of the entry it came from. The two
/// travel together: lists kept side by side drift apart as soon as an
/// invalid entry is left out of one of them.
#[derive(Debug)]
pub(crate) struct Positioned<T> {
    pub value: T,
    pub position: Position,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub position: Position,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.severity {
            Severity::Error => write!(f, "{}: {}", self.position, self.message),
            Severity::Warning => write!(f, "{}: warning: {}", self.position, self.message),
        }
    }
}

/// Collects diagnostics while one file is being checked, so that an
/// operator sees every problem at once instead of one per attempt.
#[derive(Debug)]
pub(crate) struct Reporter<'a> {
    pub file: &'a Path,
    pub out: &'a mut Vec<Diagnostic>,
}

impl Reporter<'_> {
    pub(crate) fn error_at(&mut self, location: Location, message: impl Into<String>) {
        self.push(Severity::Error, Some(location), message.into());
    }

    pub(crate) fn warn_at(&mut self, location: Location, message: impl Into<String>) {
        self.push(Severity::Warning, Some(location), message.into());
    }

    pub(crate) fn error<T>(&mut self, spanned: &Spanned<T>, message: impl Into<String>) {
        self.error_at(spanned.referenced, message);
    }

    pub(crate) fn warn<T>(&mut self, spanned: &Spanned<T>, message: impl Into<String>) {
        self.warn_at(spanned.referenced, message);
    }

    fn push(&mut self, severity: Severity, location: Option<Location>, message: String) {
        let position = match location {
            Some(location) if location.line() > 0 => Position::new(self.file, location),
            _ => Position::file(self.file),
        };
        self.out.push(Diagnostic { severity, position, message });
    }
}
