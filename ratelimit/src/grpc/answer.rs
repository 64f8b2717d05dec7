//! The `RateLimitResponse` we send, written straight from the decision.
//!
//! Nearly every answer is an overall code, one status per descriptor and at most a few headers
//! (an OVER_LIMIT answer's `Retry-After`, the `RateLimit-*` headers when enabled), with no
//! metadata. Building the generated message for it meant a vector of statuses and a `String`
//! per limit name made and dropped on every call, and prost's encoder measuring each nested
//! message again at every level it is written from. [`RlsAnswer::Statuses`] keeps the decision's
//! statuses as they are and writes the same bytes in one pass (measured once, field by field,
//! in field-number order as prost writes them; tested below against the generated message's
//! encoding), on the stack and into tonic's buffer in one copy (see `put_in_one_copy`).
//! Headers, on OK and OVER_LIMIT answers alike, are written the same way (a flood of refused
//! requests stays on this path); only an answer with dynamic metadata is sent as the generated
//! message.

use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitResponse;
use prost::bytes::{Buf, BufMut};
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, DecodeContext, WireType};
use prost::{DecodeError, Message};
use shared::serve::unary::{put_in_one_copy, WrittenPart};

use crate::core::evaluate::{Code, CurrentLimit, DescriptorStatus};

/// Field numbers (envoy/service/ratelimit/v3/rls.proto, google/protobuf/duration.proto).
mod field {
    pub const OVERALL_CODE: u32 = 1;
    pub const STATUSES: u32 = 2;
    pub const RESPONSE_HEADERS_TO_ADD: u32 = 3;
    /// `HeaderValue`'s (envoy/config/core/v3/base.proto).
    pub const HEADER_KEY: u32 = 1;
    pub const HEADER_VALUE: u32 = 2;
    pub const CODE: u32 = 1;
    pub const CURRENT_LIMIT: u32 = 2;
    pub const LIMIT_REMAINING: u32 = 3;
    pub const DURATION_UNTIL_RESET: u32 = 4;
    pub const REQUESTS_PER_UNIT: u32 = 1;
    pub const UNIT: u32 = 2;
    pub const NAME: u32 = 3;
    pub const SECONDS: u32 = 1;
}

/// A `RateLimitResponse`.
#[derive(Debug, Clone, PartialEq)]
pub enum RlsAnswer {
    /// An overall code, the descriptors' statuses and the headers to add, nothing else:
    /// written by hand.
    Statuses { overall: Code, statuses: Vec<DescriptorStatus>, headers: Vec<(String, String)> },
    /// Any other answer, as the generated message.
    Message(RateLimitResponse),
}

impl Default for RlsAnswer {
    fn default() -> RlsAnswer {
        RlsAnswer::Message(RateLimitResponse::default())
    }
}

/// The wire value of a code.
fn code_value(code: Code) -> u64 {
    super::code(code) as u64
}

/// A varint field as proto3 writes it: left out when zero.
fn varint_len(tag: u32, value: u64) -> usize {
    if value == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(value)
    }
}

fn put_varint(tag: u32, value: u64, buf: &mut impl BufMut) {
    if value != 0 {
        encode_key(tag, WireType::Varint, buf);
        encode_varint(value, buf);
    }
}

/// A present message field holding `len` bytes, key and length included.
fn delimited_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

fn put_delimited_header(tag: u32, len: usize, buf: &mut impl BufMut) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

/// `RateLimit` (the status's current limit).
fn limit_len(limit: &CurrentLimit) -> usize {
    let name = if limit.name.is_empty() { 0 } else { delimited_len(field::NAME, limit.name.len()) };
    varint_len(field::REQUESTS_PER_UNIT, u64::from(limit.requests_per_unit))
        + varint_len(field::UNIT, limit.unit.to_proto() as u64)
        + name
}

/// `google.protobuf.Duration` of whole seconds.
fn duration_len(seconds: u64) -> usize {
    varint_len(field::SECONDS, seconds)
}

fn status_len(status: &DescriptorStatus) -> usize {
    varint_len(field::CODE, code_value(status.code))
        + status.current_limit.as_ref().map_or(0, |limit| delimited_len(field::CURRENT_LIMIT, limit_len(limit)))
        + varint_len(field::LIMIT_REMAINING, u64::from(status.limit_remaining))
        + status.duration_until_reset.map_or(0, |s| delimited_len(field::DURATION_UNTIL_RESET, duration_len(s)))
}

fn put_status(status: &DescriptorStatus, buf: &mut impl BufMut) {
    put_varint(field::CODE, code_value(status.code), buf);
    if let Some(limit) = &status.current_limit {
        put_delimited_header(field::CURRENT_LIMIT, limit_len(limit), buf);
        put_varint(field::REQUESTS_PER_UNIT, u64::from(limit.requests_per_unit), buf);
        put_varint(field::UNIT, limit.unit.to_proto() as u64, buf);
        if !limit.name.is_empty() {
            put_delimited_header(field::NAME, limit.name.len(), buf);
            buf.put_slice(limit.name.as_bytes());
        }
    }
    put_varint(field::LIMIT_REMAINING, u64::from(status.limit_remaining), buf);
    if let Some(seconds) = status.duration_until_reset {
        put_delimited_header(field::DURATION_UNTIL_RESET, duration_len(seconds), buf);
        put_varint(field::SECONDS, seconds, buf);
    }
}

/// A string field as proto3 writes it: left out when empty.
fn string_len(tag: u32, text: &str) -> usize {
    if text.is_empty() {
        0
    } else {
        delimited_len(tag, text.len())
    }
}

fn put_string(tag: u32, text: &str, buf: &mut impl BufMut) {
    if !text.is_empty() {
        put_delimited_header(tag, text.len(), buf);
        buf.put_slice(text.as_bytes());
    }
}

/// A `HeaderValue` of `key` and `value`.
fn header_len((key, value): &(String, String)) -> usize {
    string_len(field::HEADER_KEY, key) + string_len(field::HEADER_VALUE, value)
}

/// The fields of an [`RlsAnswer::Statuses`].
struct StatusesPart<'a> {
    overall: Code,
    statuses: &'a [DescriptorStatus],
    headers: &'a [(String, String)],
}

impl WrittenPart for StatusesPart<'_> {
    fn written_len(&self) -> usize {
        varint_len(field::OVERALL_CODE, code_value(self.overall))
            + self.statuses.iter().map(|s| delimited_len(field::STATUSES, status_len(s))).sum::<usize>()
            + self.headers.iter().map(|h| delimited_len(field::RESPONSE_HEADERS_TO_ADD, header_len(h))).sum::<usize>()
    }

    fn write(&self, buf: &mut impl BufMut) {
        put_varint(field::OVERALL_CODE, code_value(self.overall), buf);
        for status in self.statuses {
            put_delimited_header(field::STATUSES, status_len(status), buf);
            put_status(status, buf);
        }
        for header in self.headers {
            put_delimited_header(field::RESPONSE_HEADERS_TO_ADD, header_len(header), buf);
            put_string(field::HEADER_KEY, &header.0, buf);
            put_string(field::HEADER_VALUE, &header.1, buf);
        }
    }
}

impl Message for RlsAnswer {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        match self {
            RlsAnswer::Message(message) => message.encode_raw(buf),
            RlsAnswer::Statuses { overall, statuses, headers } => {
                put_in_one_copy(&StatusesPart { overall: *overall, statuses, headers }, buf)
            }
        }
    }

    /// Decoding (only tests and clients do it) gives the generated message.
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        if let RlsAnswer::Statuses { .. } = self {
            let encoded = self.encode_to_vec();
            *self = RlsAnswer::Message(RateLimitResponse::decode(encoded.as_slice())?);
        }
        match self {
            RlsAnswer::Message(message) => message.merge_field(tag, wire_type, buf, ctx),
            RlsAnswer::Statuses { .. } => unreachable!("made a message above"),
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            RlsAnswer::Message(message) => message.encoded_len(),
            RlsAnswer::Statuses { overall, statuses, headers } => {
                StatusesPart { overall: *overall, statuses, headers }.written_len()
            }
        }
    }

    fn clear(&mut self) {
        *self = RlsAnswer::default();
    }
}

#[cfg(test)]
mod tests;
