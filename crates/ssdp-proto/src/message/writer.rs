//! Writing a message head with the checks that keep it one message: every value is free of
//! CR, LF and other control characters, every extra header name is a token, and a refused
//! message leaves the output exactly as it was.

use super::error::EmitError;
use super::head::{is_forbidden_char, is_token};
use super::Header;

/// Appends one message to `out` through `write`, or nothing at all if `write` fails.
pub(super) fn emit_atomically(
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Writer<'_>) -> Result<(), EmitError>,
) -> Result<(), EmitError> {
    let start = out.len();
    let mut writer = Writer { out };
    let result = write(&mut writer).map(|()| writer.out.extend_from_slice(b"\r\n"));
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Appends lines to a message being emitted.
pub(super) struct Writer<'o> {
    out: &'o mut Vec<u8>,
}

impl Writer<'_> {
    /// The start line, a constant of this crate.
    pub(super) fn start_line(&mut self, line: &str) {
        self.out.extend_from_slice(line.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    /// `NAME: value`, refusing a value that would break out of its line.
    pub(super) fn header(&mut self, name: &str, value: &str) -> Result<(), EmitError> {
        if value.chars().any(is_forbidden_char) {
            return Err(EmitError::InvalidHeaderValue { name: name.into() });
        }
        self.out.extend_from_slice(name.as_bytes());
        if value.is_empty() {
            // `EXT:` is sent with no value at all (UDA 2.0 §1.3.3).
            self.out.extend_from_slice(b":\r\n");
        } else {
            self.out.extend_from_slice(b": ");
            self.out.extend_from_slice(value.as_bytes());
            self.out.extend_from_slice(b"\r\n");
        }
        Ok(())
    }

    /// A header the message cannot do without: its value must not be empty (or blank, which
    /// [`parse`](super::parse) would read as empty) either.
    pub(super) fn required(&mut self, name: &'static str, value: &str) -> Result<(), EmitError> {
        if value.trim_matches([' ', '\t']).is_empty() {
            return Err(EmitError::MissingValue(name));
        }
        self.header(name, value)
    }

    /// An optional header, written only when set.
    pub(super) fn optional(&mut self, name: &str, value: Option<&str>) -> Result<(), EmitError> {
        value.map_or(Ok(()), |value| self.header(name, value))
    }

    /// An optional number, written only when set.
    pub(super) fn number(&mut self, name: &str, value: Option<u32>) -> Result<(), EmitError> {
        value.map_or(Ok(()), |value| self.header(name, &value.to_string()))
    }

    /// `CACHE-CONTROL: max-age=N` when set (UDA 2.0 §1.2.2, §1.3.3).
    pub(super) fn max_age(&mut self, seconds: Option<u32>) -> Result<(), EmitError> {
        seconds.map_or(Ok(()), |seconds| {
            self.header("CACHE-CONTROL", &format!("max-age={seconds}"))
        })
    }

    /// The caller's extra headers, minus those whose names the message writes itself from its
    /// typed fields (`owned`, compared case-insensitively), in their original order.
    pub(super) fn extras(
        &mut self,
        headers: &[Header<'_>],
        owned: &[&str],
    ) -> Result<(), EmitError> {
        for header in headers {
            if owned
                .iter()
                .any(|name| header.name.eq_ignore_ascii_case(name))
            {
                continue;
            }
            if !is_token(header.name) {
                return Err(EmitError::InvalidHeaderName {
                    name: header.name.into(),
                });
            }
            self.header(header.name, header.value)?;
        }
        Ok(())
    }
}
