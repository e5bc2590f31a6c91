//! Why a message was rejected: the field and a precise, machine-readable reason.

use std::fmt;

/// A rejected message: which field (or `"$"` for the whole message) and why.
///
/// `reason().code()` is a stable snake_case string: it goes into the dead-letter header
/// `vintagelake.error.code` and the `reason` label of the dead-letter counter.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationError {
    field: String,
    reason: Reason,
}

/// The field name used when the message as a whole is at fault.
pub const WHOLE_MESSAGE: &str = "$";

impl ValidationError {
    pub fn new(field: impl Into<String>, reason: Reason) -> Self {
        // An empty JSON key is still named: the dead-letter header never carries an empty field.
        let field = field.into();
        let field = if field.is_empty() { "\"\"".to_owned() } else { field };
        Self { field, reason }
    }

    pub fn whole(reason: Reason) -> Self {
        Self::new(WHOLE_MESSAGE, reason)
    }

    /// The offending field (`"$"` for the whole message; `rows[17].date` inside a bulk batch).
    pub fn field(&self) -> &str {
        &self.field
    }

    pub fn reason(&self) -> &Reason {
        &self.reason
    }

    /// Prefixes the field with a row position, for errors inside bulk (Arrow IPC) messages.
    pub(crate) fn at_row(mut self, row: usize) -> Self {
        self.field = format!("rows[{row}].{}", self.field);
        self
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field == WHOLE_MESSAGE {
            write!(f, "message: {}", self.reason)
        } else {
            write!(f, "field `{}`: {}", self.field, self.reason)
        }
    }
}

impl std::error::Error for ValidationError {}

/// Every way a message can be rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Reason {
    #[error("message is empty")]
    Empty,
    #[error("message is {len} bytes, more than the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("invalid UTF-8 at byte {valid_up_to}")]
    InvalidUtf8 { valid_up_to: usize },
    #[error("malformed JSON at line {line} column {column}: {detail}")]
    MalformedJson { line: usize, column: usize, detail: String },
    #[error("expected a JSON object")]
    NotAnObject,
    #[error("unknown wire format: neither a JSON object nor an Arrow IPC stream")]
    UnknownFormat,
    #[error("required field is missing")]
    MissingField,
    #[error("field appears more than once")]
    DuplicateField,
    #[error("unknown field")]
    UnknownField,
    #[error("field is not defined in wire version {version}; send version 2")]
    NotInVersion { version: u64 },
    #[error("bad code {value:?}: expected 1 to {max} ASCII letters, digits or _")]
    BadCode { value: String, max: usize },
    #[error("unknown version {found}; supported: {supported}")]
    UnknownVersion { found: String, supported: &'static str },
    #[error("expected {expected}, found {found}")]
    WrongType { expected: &'static str, found: &'static str },
    #[error("bad date {value:?}: expected YYYY-MM-DD, a real calendar day in years 0001-9999")]
    BadDate { value: String },
    #[error("bad timestamp {value:?}: expected RFC 3339, e.g. 2024-04-25T12:30:00Z")]
    BadTimestamp { value: String },
    #[error("value is not a number: {value}; use a JSON number, null or \".\" for a missing value")]
    NotANumber { value: String },
    #[error("value is not finite: {value}")]
    NotFinite { value: String },
    #[error("identifier is empty")]
    EmptyId,
    #[error("identifier is {len} bytes, more than {max}")]
    IdTooLong { len: usize, max: usize },
    #[error("identifier has invalid character {ch:?} at byte {position}; allowed: A-Z a-z 0-9 . _ - : /")]
    InvalidIdChar { ch: char, position: usize },
    #[error("bad UUID {value:?}")]
    BadUuid { value: String },
    #[error("text is {len} bytes, more than {max}")]
    TextTooLong { len: usize, max: usize },
    #[error("text is empty")]
    EmptyText,
    #[error("Arrow IPC stream is unreadable: {detail}")]
    MalformedIpc { detail: String },
    #[error("Arrow IPC column has type {found}, expected {expected}")]
    IpcColumnType { expected: String, found: String },
    #[error("null where a value is required")]
    NullValue,
    #[error("bulk message has {rows} rows, more than {max}")]
    TooManyRows { rows: usize, max: usize },
}

impl Reason {
    /// Stable identifier for headers and metric labels.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::Empty => "empty",
            Reason::TooLarge { .. } => "too_large",
            Reason::InvalidUtf8 { .. } => "invalid_utf8",
            Reason::MalformedJson { .. } => "malformed_json",
            Reason::NotAnObject => "not_an_object",
            Reason::UnknownFormat => "unknown_format",
            Reason::MissingField => "missing_field",
            Reason::DuplicateField => "duplicate_field",
            Reason::UnknownField => "unknown_field",
            Reason::NotInVersion { .. } => "not_in_version",
            Reason::BadCode { .. } => "bad_code",
            Reason::UnknownVersion { .. } => "unknown_version",
            Reason::WrongType { .. } => "wrong_type",
            Reason::BadDate { .. } => "bad_date",
            Reason::BadTimestamp { .. } => "bad_timestamp",
            Reason::NotANumber { .. } => "not_a_number",
            Reason::NotFinite { .. } => "not_finite",
            Reason::EmptyId => "empty_id",
            Reason::IdTooLong { .. } => "id_too_long",
            Reason::InvalidIdChar { .. } => "invalid_id_char",
            Reason::BadUuid { .. } => "bad_uuid",
            Reason::TextTooLong { .. } => "text_too_long",
            Reason::EmptyText => "empty_text",
            Reason::MalformedIpc { .. } => "malformed_ipc",
            Reason::IpcColumnType { .. } => "ipc_column_type",
            Reason::NullValue => "null_value",
            Reason::TooManyRows { .. } => "too_many_rows",
        }
    }
}

/// At most 64 characters of user input, for error messages that must stay small.
pub(crate) fn excerpt(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}
