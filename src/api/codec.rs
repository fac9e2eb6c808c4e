//! The protobuf codec every generated service and client uses: prost's, with
//! one change. A message that does not decode is the caller's mistake, so it
//! answers `INVALID_ARGUMENT` where prost's codec answers `INTERNAL` (which
//! tells an operator the server is broken and a client that a retry may help).

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::{ProstCodec, ProstEncoder};

/// prost's codec with decode errors as `INVALID_ARGUMENT`.
#[derive(Debug, Clone, Copy)]
pub struct RapportCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for RapportCodec<T, U> {
    fn default() -> Self {
        RapportCodec(PhantomData)
    }
}

impl<T, U> Codec for RapportCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = RapportDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RapportDecoder(PhantomData)
    }
}

/// Decodes one message with prost.
#[derive(Debug)]
pub struct RapportDecoder<U>(PhantomData<U>);

impl<U: prost::Message + Default> Decoder for RapportDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf)
            .map(Some)
            .map_err(|e| Status::invalid_argument(format!("the message does not decode: {e}")))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}
