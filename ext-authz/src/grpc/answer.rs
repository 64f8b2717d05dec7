//! The `CheckResponse` we send, encoded with the allowed identity's part reused.
//!
//! An allowed answer is mostly the identity's headers, removals and dynamic metadata (see
//! `core::identity_part`), the same for every check of that identity. They are encoded once per
//! identity and policy and kept with the identity's part; each answer then writes those bytes
//! as they are and encodes only what is its own (a forwarded cookie, the workload's header, an
//! upstream credential, query parameters to remove, cookies to set). Protocol buffers allow
//! this: a message's fields may come in any order, and the entries of a repeated field may be
//! split into runs that the reader joins — so the identity's headers followed by this answer's
//! own decode as one list, in that order, exactly as if built in one message (tested below
//! against the message built the ordinary way).

use envoy_types::pb::envoy::service::auth::v3::{CheckResponse, OkHttpResponse};
use envoy_types::pb::google::protobuf::Struct;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use prost::bytes::{Buf, BufMut, Bytes};
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, DecodeContext, WireType};
use prost::{DecodeError, Message};
use shared::serve::unary::{put_in_one_copy, WrittenPart};

use crate::core::decision::Allow;
use crate::core::identity_part::IdentityPart;

/// `CheckResponse` field numbers (envoy/service/auth/v3/external_auth.proto).
const STATUS: u32 = 1;
const OK_RESPONSE: u32 = 3;
const DYNAMIC_METADATA: u32 = 4;

/// A `CheckResponse`, built the ordinary way or as an allowed answer with reused parts.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckAnswer {
    Message(CheckResponse),
    Allowed(AllowedAnswer),
}

/// An allowed `CheckResponse`: `status` OK, `ok_response` = the identity's encoded fields then
/// `own`'s, `dynamic_metadata` = the identity's encoded `Struct` or `metadata`.
#[derive(Debug, Clone, PartialEq)]
pub struct AllowedAnswer {
    identity: EncodedPart,
    own: OkHttpResponse,
    /// Set when the answer's metadata is not the identity's as it is (a principal added).
    metadata: Option<Struct>,
}

/// An identity part, encoded: `OkHttpResponse` fields (its headers, then its removals) and a
/// `Struct`'s fields (its metadata; empty when it has none). `Bytes` so that an answer holds
/// them for the cost of two reference counts.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedPart {
    ok_fields: Bytes,
    metadata_fields: Bytes,
}

impl EncodedPart {
    fn of(part: &IdentityPart) -> EncodedPart {
        let ok = super::identity_fields(part);
        let metadata = shared::proto::to_struct_ref(&part.metadata);
        EncodedPart { ok_fields: ok.encode_to_vec().into(), metadata_fields: metadata.encode_to_vec().into() }
    }
}

impl CheckAnswer {
    /// The answer for `allow`: its identity part encoded once and reused when there is one,
    /// else the ordinary message.
    pub fn allowed(allow: Allow) -> CheckAnswer {
        let reuse_metadata = allow.metadata_is_the_identity_parts();
        let identity = allow.identity_part.as_ref().and_then(|part| part.encoded(EncodedPart::of).cloned());
        let Some(identity) = identity else {
            return CheckAnswer::Message(super::allowed(allow));
        };
        let metadata =
            (!reuse_metadata && !allow.metadata.is_empty()).then(|| shared::proto::to_struct_ref(&allow.metadata));
        let identity =
            if reuse_metadata { identity } else { EncodedPart { metadata_fields: Bytes::new(), ..identity } };
        CheckAnswer::Allowed(AllowedAnswer { identity, own: super::ok_response(allow), metadata })
    }
}

impl Default for CheckAnswer {
    fn default() -> CheckAnswer {
        CheckAnswer::Message(CheckResponse::default())
    }
}

impl From<CheckResponse> for CheckAnswer {
    fn from(message: CheckResponse) -> CheckAnswer {
        CheckAnswer::Message(message)
    }
}

impl AllowedAnswer {
    fn ok_len(&self) -> usize {
        self.identity.ok_fields.len() + self.own.encoded_len()
    }

    fn metadata_len(&self) -> usize {
        match &self.metadata {
            Some(metadata) => metadata.encoded_len(),
            None => self.identity.metadata_fields.len(),
        }
    }

    fn has_metadata(&self) -> bool {
        self.metadata.is_some() || !self.identity.metadata_fields.is_empty()
    }
}

/// The length of a length-delimited field `tag` holding `len` bytes, key and length included.
fn delimited_len(tag: u32, len: usize) -> usize {
    encoded_len_varint(u64::from(tag << 3)) + encoded_len_varint(len as u64) + len
}

fn status_ok() -> RpcStatus {
    RpcStatus { code: tonic::Code::Ok as i32, ..RpcStatus::default() }
}

/// An allowed answer's first bytes: the OK status, then the `ok_response` field's key and
/// length (`ok_len` bytes follow).
struct Head {
    ok_len: usize,
}

impl WrittenPart for Head {
    fn written_len(&self) -> usize {
        prost::encoding::message::encoded_len(STATUS, &status_ok())
            + key_len(OK_RESPONSE)
            + encoded_len_varint(self.ok_len as u64)
    }

    fn write(&self, buf: &mut impl BufMut) {
        prost::encoding::message::encode(STATUS, &status_ok(), buf);
        DelimitedKey { tag: OK_RESPONSE, len: self.ok_len }.write(buf);
    }
}

/// A length-delimited field's key and length (`len` bytes follow).
struct DelimitedKey {
    tag: u32,
    len: usize,
}

impl WrittenPart for DelimitedKey {
    fn written_len(&self) -> usize {
        key_len(self.tag) + encoded_len_varint(self.len as u64)
    }

    fn write(&self, buf: &mut impl BufMut) {
        encode_key(self.tag, WireType::LengthDelimited, buf);
        encode_varint(self.len as u64, buf);
    }
}

/// A message's fields.
struct Fields<'a, M>(&'a M);

impl<M: Message> WrittenPart for Fields<'_, M> {
    fn written_len(&self) -> usize {
        self.0.encoded_len()
    }

    fn write(&self, buf: &mut impl BufMut) {
        self.0.encode_raw(buf);
    }
}

impl Message for CheckAnswer {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        let answer = match self {
            CheckAnswer::Message(message) => return message.encode_raw(buf),
            CheckAnswer::Allowed(answer) => answer,
        };
        // The small parts written byte by byte go through the stack (see `put_in_one_copy`);
        // the identity's encoded parts are copied as they are.
        put_in_one_copy(&Head { ok_len: answer.ok_len() }, buf);
        buf.put_slice(&answer.identity.ok_fields);
        put_in_one_copy(&Fields(&answer.own), buf);
        if answer.has_metadata() {
            put_in_one_copy(&DelimitedKey { tag: DYNAMIC_METADATA, len: answer.metadata_len() }, buf);
            match &answer.metadata {
                Some(metadata) => put_in_one_copy(&Fields(metadata), buf),
                None => buf.put_slice(&answer.identity.metadata_fields),
            }
        }
    }

    /// Decoding (only tests and clients do it) gives the ordinary message.
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        if let CheckAnswer::Allowed(_) = self {
            let encoded = self.encode_to_vec();
            *self = CheckAnswer::Message(CheckResponse::decode(encoded.as_slice())?);
        }
        match self {
            CheckAnswer::Message(message) => message.merge_field(tag, wire_type, buf, ctx),
            CheckAnswer::Allowed(_) => unreachable!("made a message above"),
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            CheckAnswer::Message(message) => message.encoded_len(),
            CheckAnswer::Allowed(answer) => {
                let metadata =
                    if answer.has_metadata() { delimited_len(DYNAMIC_METADATA, answer.metadata_len()) } else { 0 };
                prost::encoding::message::encoded_len(STATUS, &status_ok())
                    + delimited_len(OK_RESPONSE, answer.ok_len())
                    + metadata
            }
        }
    }

    fn clear(&mut self) {
        *self = CheckAnswer::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use serde_json::json;

    use crate::core::claims::ClaimPath;
    use crate::core::identity::{ArrayFormat, Identity, IdentityHeaders};
    use crate::core::identity_part::IdentityAnswer;
    use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;

    fn decoded(answer: &CheckAnswer) -> CheckResponse {
        CheckResponse::decode(answer.encode_to_vec().as_slice()).expect("our own answer decodes")
    }

    fn settings(dynamic_metadata: bool) -> Arc<IdentityAnswer> {
        Arc::new(IdentityAnswer {
            headers: IdentityHeaders {
                rules: IdentityHeaders::defaults(),
                arrays: ArrayFormat::Join(",".into()),
                payload_header: Some("x-auth-payload".into()),
            },
            dynamic_metadata,
            metadata_claims: vec![ClaimPath::parse("plan")],
        })
    }

    fn allow(identity: &Identity, settings: &Arc<IdentityAnswer>) -> Allow {
        let part = identity.answer_part(settings);
        Allow {
            metadata: part.metadata.clone(),
            identity_part: Some(part),
            headers: vec![("cookie".into(), "a=1".into())],
            remove: vec!["authorization".into()],
            remove_query: vec!["access_token".into()],
            identity: Some(identity.clone()),
            principal: None,
            reason: "authenticated",
            set_cookies: vec!["s=1; Path=/".into(), "t=2; Path=/".into()],
            upstream: None,
        }
    }

    /// The ordinary message: every header and removal in `allow`'s order.
    fn ordinary(allow: &Allow) -> CheckResponse {
        let mut flat = allow.clone();
        flat.headers = allow.all_headers().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        flat.remove = allow.all_removed().map(str::to_string).collect();
        flat.identity_part = None;
        super::super::allowed(flat)
    }

    #[test]
    fn a_reused_identity_part_decodes_as_the_ordinary_message() {
        let identity = Identity::from_jwt(
            "corp",
            Arc::new(json!({"sub": "u1", "email": "u1@test", "scope": "read write", "plan": {"tier": "gold"}})),
        );
        for dynamic_metadata in [true, false] {
            let settings = settings(dynamic_metadata);
            let allow = allow(&identity, &settings);
            let answer = CheckAnswer::allowed(allow.clone());
            assert!(matches!(answer, CheckAnswer::Allowed(_)), "the identity's part is reused");
            assert_eq!(answer.encoded_len(), answer.encode_to_vec().len());
            assert_eq!(decoded(&answer), ordinary(&allow), "dynamic metadata {dynamic_metadata}");
            // The second answer of the same identity reuses the same encoding.
            assert_eq!(decoded(&CheckAnswer::allowed(allow.clone())), ordinary(&allow));
        }
    }

    #[test]
    fn metadata_with_a_principal_added_is_encoded_as_it_is() {
        let identity = Identity::from_jwt("corp", Arc::new(json!({"sub": "u1"})));
        let mut allow = allow(&identity, &settings(true));
        Arc::make_mut(&mut allow.metadata).insert("principal".into(), json!("spiffe://shop.test/sa/web"));
        allow.principal = Some("spiffe://shop.test/sa/web".into());
        let answer = CheckAnswer::allowed(allow.clone());
        let response = decoded(&answer);
        assert_eq!(response, ordinary(&allow));
        let fields = response.dynamic_metadata.expect("metadata").fields;
        assert!(fields.contains_key("principal") && fields.contains_key("user_id"));
    }

    #[test]
    fn without_an_identity_the_ordinary_message_is_sent() {
        let identity = Identity::from_jwt("corp", Arc::new(json!({"sub": "u1"})));
        let mut allow = allow(&identity, &settings(true));
        allow.identity_part = None;
        allow.metadata = Arc::default();
        let answer = CheckAnswer::allowed(allow.clone());
        assert!(matches!(answer, CheckAnswer::Message(_)));
        let response = decoded(&answer);
        assert_eq!(response, ordinary(&allow));
        assert_eq!(response.dynamic_metadata, None);
        let Some(HttpResponse::OkResponse(ok)) = response.http_response else { panic!("an ok response") };
        assert_eq!(ok.headers.len(), 1, "only the forwarded cookie");
    }

    #[test]
    fn decoding_gives_the_ordinary_message() {
        let identity = Identity::from_jwt("corp", Arc::new(json!({"sub": "u1"})));
        let allow = allow(&identity, &settings(true));
        let bytes = CheckAnswer::allowed(allow.clone()).encode_to_vec();
        assert_eq!(CheckAnswer::decode(bytes.as_slice()).unwrap(), CheckAnswer::Message(ordinary(&allow)));
    }
}

/// Any identity and any answer of its own: the reused encoding decodes to the ordinary message.
#[cfg(test)]
mod properties {
    use super::*;
    use std::sync::Arc;

    use proptest::prelude::*;
    use serde_json::{json, Value};

    use crate::core::claims::ClaimPath;
    use crate::core::identity::{ArrayFormat, Identity, IdentityHeaders};
    use crate::core::identity_part::IdentityAnswer;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![Just(String::new()), "[a-z0-9 ,.=;_-]{1,12}", "\\PC{0,24}"]
    }

    fn claims() -> impl Strategy<Value = Value> {
        (
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::collection::vec("[a-z:]{1,8}", 0..4),
            proptest::option::of(prop_oneof![text().prop_map(Value::from), any::<i64>().prop_map(Value::from)]),
        )
            .prop_map(|(sub, email, org, scopes, plan)| {
                let mut claims = json!({"scope": scopes.join(" ")});
                for (name, value) in [("sub", sub), ("email", email), ("org_id", org)] {
                    if let Some(value) = value {
                        claims[name] = json!(value);
                    }
                }
                if let Some(plan) = plan {
                    claims["plan"] = plan;
                }
                claims
            })
    }

    proptest! {
        #[test]
        fn the_reused_encoding_is_the_ordinary_message(
            claims in claims(),
            dynamic_metadata in any::<bool>(),
            payload in any::<bool>(),
            own_headers in proptest::collection::vec(("[a-z-]{1,10}", text()), 0..3),
            own_removed in proptest::collection::vec("[a-z-]{1,10}", 0..3),
            removed_query in proptest::collection::vec("[a-z_]{1,10}", 0..2),
            cookies in proptest::collection::vec("[a-z]{1,6}=[a-z0-9]{0,8}", 0..3),
            principal in proptest::option::of("spiffe://[a-z]{1,8}/[a-z]{1,8}"),
        ) {
            let settings = Arc::new(IdentityAnswer {
                headers: IdentityHeaders {
                    rules: IdentityHeaders::defaults(),
                    arrays: ArrayFormat::Join(",".into()),
                    payload_header: payload.then(|| "x-auth-payload".to_string()),
                },
                dynamic_metadata,
                metadata_claims: vec![ClaimPath::parse("plan")],
            });
            let identity = Identity::from_jwt("corp", Arc::new(claims));
            let part = identity.answer_part(&settings);
            let mut metadata = part.metadata.clone();
            if let Some(id) = principal.as_ref().filter(|_| dynamic_metadata) {
                Arc::make_mut(&mut metadata).insert("principal".into(), json!(id));
            }
            let allow = Allow {
                metadata,
                identity_part: Some(part),
                headers: own_headers,
                remove: own_removed,
                remove_query: removed_query,
                identity: Some(identity.clone()),
                principal,
                reason: "authenticated",
                set_cookies: cookies,
                upstream: None,
            };
            let mut flat = allow.clone();
            flat.headers = allow.all_headers().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            flat.remove = allow.all_removed().map(str::to_string).collect();
            flat.identity_part = None;
            let ordinary = super::super::allowed(flat);
            // Twice: the first answer makes the part's encoding, the second reuses it.
            for _ in 0..2 {
                let answer = CheckAnswer::allowed(allow.clone());
                let bytes = answer.encode_to_vec();
                prop_assert_eq!(bytes.len(), answer.encoded_len());
                prop_assert_eq!(&CheckResponse::decode(bytes.as_slice()).unwrap(), &ordinary);
            }
        }
    }
}
