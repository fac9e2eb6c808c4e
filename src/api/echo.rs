//! The Echo service: the gRPC floor. The same server stack doing nothing but
//! echo, against which every other RPC's cost is measured.

use tonic::{Request, Response, Status};

use super::{pb, RapportService};

#[tonic::async_trait]
impl pb::echo_server::Echo for RapportService {
    async fn echo(
        &self,
        request: Request<pb::EchoRequest>,
    ) -> Result<Response<pb::EchoResponse>, Status> {
        let pb::EchoRequest {
            relationship_id,
            payload,
        } = request.into_inner();
        Ok(Response::new(pb::EchoResponse {
            relationship_id,
            payload,
        }))
    }
}
