//! The protobuf codec of every gRPC service the plugin serves and calls:
//! prost, with a small first buffer per message.
//!
//! tonic starts each message's encode and decode buffer at 8 KiB, and keeps
//! it for as long as the call is open. The protocol's messages are mostly a
//! few hundred bytes, and a plugin has as many calls open as the server
//! sends it at once: a `revoke-prefix` queues a few hundred revocations,
//! each waiting on its storage call, so those buffers alone came to
//! megabytes. A buffer that starts at 1 KiB grows to fit a large message (a
//! listing) as before.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstDecoder, ProstEncoder};

/// Where each message's buffer starts.
const FIRST_BUFFER: usize = 1024;
/// tonic's default: how much a stream of messages buffers before it yields.
const YIELD_THRESHOLD: usize = 32 * 1024;

/// [`tonic_prost::ProstCodec`] with a [`FIRST_BUFFER`] of 1 KiB; `build.rs`
/// makes it the codec of the generated services and clients.
#[derive(Debug)]
pub(crate) struct SmallBufferCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for SmallBufferCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

fn settings() -> BufferSettings {
    BufferSettings::new(FIRST_BUFFER, YIELD_THRESHOLD)
}

impl<T, U> Codec for SmallBufferCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(settings())
    }
}
