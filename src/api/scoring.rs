//! The Scoring service: Score (single, batch, stream), Segment, Recommend.

use std::pin::Pin;

use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::{convert, pb, RapportService};

type ScoreStream = Pin<Box<dyn Stream<Item = Result<pb::RelationshipScore, Status>> + Send>>;

#[tonic::async_trait]
impl pb::scoring_server::Scoring for RapportService {
    async fn score(
        &self,
        request: Request<pb::ScoreRequest>,
    ) -> Result<Response<pb::RelationshipScore>, Status> {
        let pb::ScoreRequest {
            relationship_id,
            as_of,
            max_reasons,
        } = request.into_inner();
        let as_of = convert::optional_timestamp("as_of", as_of)?;
        Ok(Response::new(
            self.score_one(relationship_id, as_of, max_reasons).await?,
        ))
    }

    async fn score_batch(
        &self,
        request: Request<pb::ScoreBatchRequest>,
    ) -> Result<Response<pb::ScoreBatchResponse>, Status> {
        let pb::ScoreBatchRequest {
            relationship_ids,
            as_of,
            max_reasons,
            skip_unknown,
        } = request.into_inner();
        let as_of = convert::optional_timestamp("as_of", as_of)?;
        let engine = self.engine.clone();
        // A 10,000-id batch is milliseconds of CPU: keep it off the async workers.
        let (scores, unknown_ids) = self
            .heavy("scoring", move || {
                if skip_unknown {
                    engine.score_many_known(&relationship_ids, as_of, max_reasons)
                } else {
                    Ok((
                        engine.score_many(&relationship_ids, as_of, max_reasons)?,
                        Vec::new(),
                    ))
                }
            })
            .await?;
        Ok(Response::new(pb::ScoreBatchResponse {
            scores: scores.into_iter().map(convert::score_to).collect(),
            unknown_ids,
        }))
    }

    type ScoreStreamStream = ScoreStream;

    async fn score_stream(
        &self,
        request: Request<Streaming<pb::ScoreRequest>>,
    ) -> Result<Response<Self::ScoreStreamStream>, Status> {
        // Each request is scored as the response stream is polled: no task or
        // channel hop per message (but for backtests, on the blocking pool),
        // and the encoder packs every reply that is ready into one write.
        // tonic ends the call at the first error.
        let service = self.clone();
        let replies = request.into_inner().then(move |next| {
            let service = service.clone();
            async move {
                let pb::ScoreRequest {
                    relationship_id,
                    as_of,
                    max_reasons,
                } = next?;
                let as_of = convert::optional_timestamp("as_of", as_of)?;
                service.score_one(relationship_id, as_of, max_reasons).await
            }
        });
        Ok(Response::new(Box::pin(replies)))
    }

    async fn segment(
        &self,
        request: Request<pb::SegmentRequest>,
    ) -> Result<Response<pb::SegmentResponse>, Status> {
        let pb::SegmentRequest {
            relationship_id,
            as_of,
        } = request.into_inner();
        let as_of = convert::optional_timestamp("as_of", as_of)?;
        let segment = match as_of {
            None => self.engine.segment(&relationship_id, None)?,
            Some(_) => {
                let engine = self.engine.clone();
                self.heavy("segment", move || engine.segment(&relationship_id, as_of))
                    .await?
            }
        };
        Ok(Response::new(convert::segment_to(segment)))
    }

    async fn recommend(
        &self,
        request: Request<pb::RecommendRequest>,
    ) -> Result<Response<pb::RecommendResponse>, Status> {
        let req = convert::recommend_from(request.into_inner())?;
        let out = match req.as_of {
            None => self.engine.recommend(&req)?,
            Some(_) => {
                let engine = self.engine.clone();
                self.heavy("recommend", move || engine.recommend(&req))
                    .await?
            }
        };
        Ok(Response::new(convert::recommend_to(out)))
    }

    async fn recommend_batch(
        &self,
        request: Request<pb::RecommendBatchRequest>,
    ) -> Result<Response<pb::RecommendBatchResponse>, Status> {
        let pb::RecommendBatchRequest {
            relationship_ids,
            as_of,
            max_actions,
            exclude_product_ids,
            exclude_action_types,
            skip_unknown,
        } = request.into_inner();
        let template = convert::recommend_from(pb::RecommendRequest {
            relationship_id: String::new(),
            as_of,
            max_actions,
            exclude_product_ids,
            exclude_action_types,
        })?;
        let engine = self.engine.clone();
        let (answers, unknown_ids) = tokio::task::spawn_blocking(move || {
            engine.recommend_many(&relationship_ids, &template, skip_unknown)
        })
        .await
        .map_err(|e| Status::internal(format!("recommend task failed: {e}")))??;
        Ok(Response::new(pb::RecommendBatchResponse {
            recommendations: answers.into_iter().map(convert::recommend_to).collect(),
            unknown_ids,
        }))
    }
}

impl RapportService {
    /// A score now on the calling worker (microseconds from the cache), or
    /// as of a time on the blocking pool: a backtest reads and folds the
    /// relationship's events, which over a long history takes milliseconds.
    async fn score_one(
        &self,
        relationship_id: String,
        as_of: Option<crate::time::Timestamp>,
        max_reasons: u32,
    ) -> Result<pb::RelationshipScore, Status> {
        let score = match as_of {
            None => self.engine.score(&relationship_id, None, max_reasons)?,
            Some(_) => {
                let engine = self.engine.clone();
                self.heavy("scoring", move || {
                    engine.score(&relationship_id, as_of, max_reasons)
                })
                .await?
            }
        };
        Ok(convert::score_to(score))
    }
}
