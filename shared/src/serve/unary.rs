//! A gRPC service of one unary method, routed by hand instead of through a generated server.
//!
//! Why: a generated server fixes the answer's type to the generated message, so every answer is
//! built as that message and encoded field by field. Our services answer with types of their
//! own that encode to the same wire message faster (an identity's encoded part reused, a rate
//! limit verdict written straight from the decision); clients see the same bytes.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use tonic::codegen::{http, Body, BoxFuture, Context, Poll, Service, StdError};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic_prost::ProstCodec;

/// The one method a [`UnaryServer`] serves.
pub trait UnaryMethod: Send + Sync + 'static {
    /// The gRPC service's full name (`package.Service`).
    const SERVICE: &'static str;
    /// The method's path, `/package.Service/Method`.
    const PATH: &'static str;
    type Request: prost::Message + Default + Send + 'static;
    type Answer: prost::Message + Send + 'static;

    fn call(
        &self,
        request: tonic::Request<Self::Request>,
    ) -> impl Future<Output = Result<tonic::Response<Self::Answer>, tonic::Status>> + Send;
}

/// Serves `M`'s method; any other path is answered UNIMPLEMENTED, as a generated server does.
pub struct UnaryServer<M> {
    method: Arc<M>,
}

impl<M> UnaryServer<M> {
    pub fn new(method: M) -> UnaryServer<M> {
        UnaryServer { method: Arc::new(method) }
    }
}

impl<M> Clone for UnaryServer<M> {
    fn clone(&self) -> UnaryServer<M> {
        UnaryServer { method: self.method.clone() }
    }
}

impl<M: UnaryMethod> NamedService for UnaryServer<M> {
    const NAME: &'static str = M::SERVICE;
}

/// One call of the method.
struct Call<M>(Arc<M>);

impl<M: UnaryMethod> UnaryService<M::Request> for Call<M> {
    type Response = M::Answer;
    type Future = BoxFuture<tonic::Response<M::Answer>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<M::Request>) -> Self::Future {
        let method = self.0.clone();
        Box::pin(async move { method.call(request).await })
    }
}

impl<M, B> Service<http::Request<B>> for UnaryServer<M>
where
    M: UnaryMethod,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != M::PATH {
            return Box::pin(async { Ok(tonic::Status::unimplemented("").into_http()) });
        }
        let call = Call(self.method.clone());
        Box::pin(async move {
            let mut grpc = Grpc::new(ProstCodec::<M::Answer, M::Request>::default());
            Ok(grpc.unary(call, request).await)
        })
    }
}

/// Part of an answer that writes its own bytes, key by key, varint by varint.
pub trait WrittenPart {
    /// The bytes [`write`](WrittenPart::write) writes.
    fn written_len(&self) -> usize;
    fn write(&self, buf: &mut impl prost::bytes::BufMut);
}

/// Parts up to this size go through the stack.
const STACK_PART: usize = 256;

/// Writes `part` into `buf` with one copy when it is small.
///
/// Why: tonic's encode buffer takes each byte a protobuf encoder writes on its own (every key
/// and varint byte is a `put_u8`, which it turns into a one-byte slice copy through `BytesMut`)
/// — some forty instructions a byte, more than the rest of a small answer's encoding. A part
/// that fits on the stack is written there, byte stores, and copied into `buf` once.
pub fn put_in_one_copy(part: &impl WrittenPart, buf: &mut impl prost::bytes::BufMut) {
    if part.written_len() > STACK_PART {
        return part.write(buf);
    }
    let mut stack = [0u8; STACK_PART];
    let mut free: &mut [u8] = &mut stack;
    part.write(&mut free);
    // What was written, whatever `written_len` said (a miscount cannot corrupt the answer).
    let written = STACK_PART - free.len();
    buf.put_slice(&stack[..written]);
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Bytes(Vec<u8>);

    impl WrittenPart for Bytes {
        fn written_len(&self) -> usize {
            self.0.len()
        }
        fn write(&self, buf: &mut impl prost::bytes::BufMut) {
            for byte in &self.0 {
                buf.put_u8(*byte);
            }
        }
    }

    #[test]
    fn a_part_is_written_whole_on_either_side_of_the_stack_bound() {
        for len in [0, 1, STACK_PART - 1, STACK_PART, STACK_PART + 1, 4 * STACK_PART] {
            let part = Bytes((0..len).map(|i| i as u8).collect());
            let mut buf = Vec::from(*b"before");
            put_in_one_copy(&part, &mut buf);
            assert_eq!(&buf[..6], b"before");
            assert_eq!(&buf[6..], part.0.as_slice(), "{len} bytes");
        }
    }
}
