//! The parsed form of one syslog message, borrowing from the received bytes.

use std::borrow::Cow;

use decnet_store::Severity;

/// Bounds applied while parsing; every one of them is reached only by hostile or broken senders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest accepted message in bytes (RFC 5424 §6.1 lets receivers choose).
    pub max_message_len: usize,
    /// STRUCTURED-DATA elements per message.
    pub max_sd_elements: usize,
    /// STRUCTURED-DATA parameters per message, over all elements.
    pub max_sd_params: usize,
}

impl Limits {
    pub const DEFAULT_MAX_MESSAGE_LEN: usize = 64 * 1024;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_len: Self::DEFAULT_MAX_MESSAGE_LEN,
            max_sd_elements: 16,
            max_sd_params: 128,
        }
    }
}

/// Which grammar a message was read with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// RFC 5424 (`<PRI>1 TIMESTAMP ...`).
    Rfc5424,
    /// RFC 3164 / BSD, including lines with none of its header, which become bare MSG.
    Rfc3164,
}

/// One PARAM-NAME="PARAM-VALUE" pair, the value unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdParam<'a> {
    pub name: &'a str,
    /// Unescaped; invalid UTF-8 is replaced by U+FFFD (and the message flagged).
    pub value: Cow<'a, str>,
}

/// One `[SD-ID param="value" ...]` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdElement<'a> {
    pub id: &'a str,
    pub params: Vec<SdParam<'a>>,
}

/// A parsed syslog message. Header fields are `None` for NILVALUE (`-`) or when absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogMessage<'a> {
    pub format: Format,
    /// Facility code (0–23).
    pub facility: u8,
    pub severity: Severity,
    /// UTC nanoseconds since the Unix epoch, when the message carried a usable time.
    pub timestamp_ns: Option<i64>,
    pub hostname: Option<&'a str>,
    pub app_name: Option<&'a str>,
    pub proc_id: Option<&'a str>,
    pub msg_id: Option<&'a str>,
    pub structured_data: Vec<SdElement<'a>>,
    /// MSG without its BOM, exactly as received (it may be any octets).
    pub msg: &'a [u8],
    /// Whether MSG started with a UTF-8 BOM (RFC 5424 MSG-UTF8).
    pub bom: bool,
    /// MSG as text when it is valid UTF-8: the parser checks it once and keeps the result, so
    /// [`Self::msg_text`] does not check it again.
    pub msg_utf8: Option<&'a str>,
    /// Whether a parameter value or MSG was not valid UTF-8 and had to be read lossily.
    pub invalid_utf8: bool,
    /// The whole message as received.
    pub raw: &'a [u8],
}

impl<'a> SyslogMessage<'a> {
    /// MSG as text, invalid UTF-8 replaced by U+FFFD.
    pub fn msg_text(&self) -> Cow<'a, str> {
        match self.msg_utf8 {
            // The check is on the pointer, not the bytes: a hand-built message whose `msg_utf8`
            // is not `msg` itself falls back to reading `msg`.
            Some(text) if std::ptr::eq(text.as_bytes(), self.msg) => Cow::Borrowed(text),
            _ => String::from_utf8_lossy(self.msg),
        }
    }

    /// Every SD parameter of every element, in message order.
    pub fn params(&self) -> impl Iterator<Item = &SdParam<'a>> {
        self.structured_data.iter().flat_map(|e| e.params.iter())
    }

    /// PRI as it appeared: `facility * 8 + severity`.
    pub fn pri(&self) -> u8 {
        // Shifting cannot overflow-panic even for a hand-built facility above 23.
        (self.facility << 3) | self.severity.code()
    }
}

/// Splits a PRI value into facility and severity; `pri` is at most 191 by the time we get here.
pub(crate) fn split_pri(pri: u8) -> (u8, Severity) {
    let severity = Severity::from_code(pri & 7).unwrap_or(Severity::Debug);
    (pri >> 3, severity)
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// MSG as both grammars read it.
pub(crate) struct Msg<'a> {
    pub body: &'a [u8],
    pub bom: bool,
    /// `body` as text, `None` when it is not valid UTF-8.
    pub text: Option<&'a str>,
}

/// Splits off a leading BOM and checks MSG's UTF-8, the two things both grammars ask of MSG.
pub(crate) fn read_msg(msg: &[u8]) -> Msg<'_> {
    let (body, bom) = match msg.strip_prefix(BOM) {
        Some(body) => (body, true),
        None => (msg, false),
    };
    Msg {
        body,
        bom,
        text: std::str::from_utf8(body).ok(),
    }
}
