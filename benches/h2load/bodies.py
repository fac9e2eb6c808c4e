#!/usr/bin/env python3
"""gRPC-framed request bodies for h2load, and the checks that they get real answers.

h2load posts one fixed body per run and sees only HTTP/2 status and DATA; it never
reads the trailers that carry grpc-status. So every body is also sent once through
a real gRPC client (grpcio), byte for byte the same message, and the answer is
checked field by field. The messages are built from proto/rapport/v1/rapport.proto,
compiled here at run time with grpcio-tools, so a change to the proto cannot leave
a stale hand-encoded body behind.

  bodies.py wait   --target HOST:PORT [--seconds S]
  bodies.py build  --proto-root DIR --out DIR [--id ID]
                   (--batch-ids ID,ID,... | --discover HOST:PORT [--batch-size N])
                   [--query-segment NAME] [--query-stage STAGE]
  bodies.py verify --target HOST:PORT --out DIR [--rpc NAME ...]

`wait` polls grpc.health.v1 until SERVING: the server listens before its demo book
and model are ready. `build` writes OUT/NAME.bin (1-byte compressed flag 0, 4-byte big-endian length,
the protobuf bytes) and OUT/targets.tsv (name, path, body file, relationships per
call). `verify` exits non-zero, saying why, unless every named body gets
grpc-status 0 and a plausible answer; it prints one line per body with the size of
the answer's gRPC frame, which run.sh compares with h2load's DATA bytes per request.
"""

import argparse
import importlib
import os
import struct
import sys
import time

ECHO_PAYLOAD = 250  # the size `rapport bench` uses for its floor
MAX_REASONS = 3
MAX_ACTIONS = 3

# name -> (gRPC path, response message, relationships per call or None for batch size)
TARGETS = {
    "echo": ("/rapport.v1.Echo/Echo", "EchoResponse", 1),
    "score": ("/rapport.v1.Scoring/Score", "RelationshipScore", 1),
    "segment": ("/rapport.v1.Scoring/Segment", "SegmentResponse", 1),
    "recommend": ("/rapport.v1.Scoring/Recommend", "RecommendResponse", 1),
    "score-batch": ("/rapport.v1.Scoring/ScoreBatch", "ScoreBatchResponse", None),
    "query": ("/rapport.v1.Book/QueryRelationships", "QueryRelationshipsResponse", 1),
    "summarize": ("/rapport.v1.Book/SummarizeBook", "SummarizeBookResponse", 1),
}
REQUESTS = {
    "echo": "EchoRequest",
    "score": "ScoreRequest",
    "segment": "SegmentRequest",
    "recommend": "RecommendRequest",
    "score-batch": "ScoreBatchRequest",
    "query": "QueryRelationshipsRequest",
    "summarize": "SummarizeBookRequest",
}
QUERY_PAGE = 100  # the top 100 by value at risk


class Failed(Exception):
    """A body that did not get a real answer."""


def compile_proto(proto_root, out):
    """Compiles rapport.proto into OUT/gen and imports its messages."""
    from grpc_tools import protoc
    import grpc_tools

    gen = os.path.join(out, "gen")
    os.makedirs(gen, exist_ok=True)
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    args = [
        "protoc",
        f"-I{proto_root}",
        f"-I{include}",
        f"--python_out={gen}",
        os.path.join(proto_root, "rapport", "v1", "rapport.proto"),
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {args[-1]}")
    sys.path.insert(0, gen)
    return importlib.import_module("rapport.v1.rapport_pb2")


def load_messages(out):
    """Imports the messages `build` compiled into OUT/gen."""
    sys.path.insert(0, os.path.join(out, "gen"))
    return importlib.import_module("rapport.v1.rapport_pb2")


def frame(message_bytes):
    return struct.pack(">BI", 0, len(message_bytes)) + message_bytes


def unframe(body, name):
    if len(body) < 5:
        raise Failed(f"{name}: body shorter than a gRPC frame header")
    flag, length = struct.unpack(">BI", body[:5])
    if flag != 0 or length != len(body) - 5:
        raise Failed(f"{name}: not one uncompressed gRPC frame (flag {flag}, length {length})")
    return body[5:]


def requests(pb, rid, batch_ids, segment, stage):
    query_filter = pb.BookFilter(rfm_segments=[segment], stages=[pb.LifecycleStage.Value(stage)])
    return {
        "query": pb.QueryRelationshipsRequest(filter=query_filter, order_by=pb.BOOK_ORDER_VALUE_AT_RISK,
                                              page_size=QUERY_PAGE),
        "summarize": pb.SummarizeBookRequest(),
        "echo": pb.EchoRequest(relationship_id=rid, payload=b"\x5a" * ECHO_PAYLOAD),
        "score": pb.ScoreRequest(relationship_id=rid, max_reasons=MAX_REASONS),
        "segment": pb.SegmentRequest(relationship_id=rid),
        "recommend": pb.RecommendRequest(relationship_id=rid, max_actions=MAX_ACTIONS),
        "score-batch": pb.ScoreBatchRequest(relationship_ids=batch_ids, max_reasons=MAX_REASONS),
    }


def discover(pb, target, count):
    """The first COUNT ids of the book, in index order. A demo id is its kind's
    letter and its index (`c-000000`, `a-000006`), the kind drawn at random per
    index, so each index is asked under every letter with GetRelationship."""
    import grpc

    ids = []
    with grpc.insecure_channel(target) as channel:
        get = channel.unary_unary("/rapport.v1.Ingest/GetRelationship",
                                  request_serializer=pb.GetRelationshipRequest.SerializeToString,
                                  response_deserializer=pb.GetRelationshipResponse.FromString)
        index = 0
        while len(ids) < count:
            found = None
            for letter in "casp":
                rid = f"{letter}-{index:06d}"
                try:
                    if get(pb.GetRelationshipRequest(id=rid), timeout=10).relationship.id == rid:
                        found = rid
                        break
                except grpc.RpcError as e:
                    if e.code() != grpc.StatusCode.NOT_FOUND:
                        raise Failed(f"GetRelationship {rid}: {e.code().name}: {e.details()}")
            if found is None:
                raise Failed(f"no relationship at index {index} under any kind: "
                             f"not a demo book, pass --batch-ids")
            ids.append(found)
            index += 1
    return ids


def build(args):
    pb = compile_proto(os.path.abspath(args.proto_root), args.out)
    if args.batch_ids:
        batch_ids = args.batch_ids.split(",")
    elif args.discover:
        batch_ids = discover(pb, args.discover, args.batch_size)
    else:
        raise SystemExit("build needs --batch-ids or --discover")
    with open(os.path.join(args.out, "targets.tsv"), "w") as tsv:
        for name, message in requests(pb, args.id, batch_ids, args.query_segment, args.query_stage).items():
            path, _, per_call = TARGETS[name]
            file = os.path.join(args.out, f"{name}.bin")
            with open(file, "wb") as f:
                f.write(frame(message.SerializeToString()))
            tsv.write(f"{name}\t{path}\t{file}\t{per_call or len(batch_ids)}\n")
    print(f"bodies for {args.id} (batch of {len(batch_ids)}) in {args.out}")


def require(ok, name, what):
    if not ok:
        raise Failed(f"{name}: {what}")


def check_score(name, score, rid):
    require(score.relationship_id == rid, name, f"relationship_id {score.relationship_id!r}, asked {rid!r}")
    require(0.0 <= score.churn_probability <= 1.0, name, f"churn_probability {score.churn_probability}")
    require(score.model_version > 0, name, "model_version 0")
    require(score.churn_horizon_days > 0, name, "churn_horizon_days 0")
    require(score.health_score <= 100, name, f"health_score {score.health_score}")
    require(0 < len(score.reasons) <= MAX_REASONS, name, f"{len(score.reasons)} reasons for max {MAX_REASONS}")
    horizon = [h.probability for h in score.churn_by_horizon]
    require(horizon and horizon == sorted(horizon), name, f"churn_by_horizon not rising: {horizon}")
    require(score.HasField("as_of"), name, "no as_of")


def check(name, request, response):
    """Raises Failed unless RESPONSE is a real answer to REQUEST."""
    if name == "echo":
        require(response.relationship_id == request.relationship_id, name, "relationship_id not echoed")
        require(response.payload == request.payload, name, f"payload of {len(response.payload)} bytes not echoed")
    elif name == "score":
        check_score(name, response, request.relationship_id)
    elif name == "segment":
        rid = request.relationship_id
        require(response.relationship_id == rid, name, f"relationship_id {response.relationship_id!r}, asked {rid!r}")
        require(response.model_version > 0, name, "model_version 0")
        require(response.rfm.segment != "", name, "no RFM segment")
        require(all(1 <= q <= 5 for q in (response.rfm.recency, response.rfm.frequency, response.rfm.monetary)),
                name, f"RFM quintiles out of 1..5: {response.rfm}")
        require(response.value_tier.name != "" and response.value_tier.rank > 0, name, "no value tier")
        require(response.lifecycle_stage != 0, name, "lifecycle stage unspecified")
    elif name == "recommend":
        rid = request.relationship_id
        require(response.relationship_id == rid, name, f"relationship_id {response.relationship_id!r}, asked {rid!r}")
        require(response.model_version > 0, name, "model_version 0")
        require(0 < len(response.actions) <= MAX_ACTIONS, name, f"{len(response.actions)} actions for max {MAX_ACTIONS}")
        require(all(a.type != 0 for a in response.actions), name, "an action of unspecified type")
        values = [a.expected_net_value for a in response.actions]
        require(values == sorted(values, reverse=True), name, f"actions not ranked: {values}")
    elif name == "query":
        rows = list(response.rows)
        require(0 < len(rows) <= QUERY_PAGE, name, f"{len(rows)} rows for a page of {QUERY_PAGE}")
        require(response.total_matches >= len(rows), name, f"total_matches {response.total_matches}")
        require(response.index.model_version > 0, name, "index of model version 0 (not yet checked)")
        wanted = (list(request.filter.rfm_segments), list(request.filter.stages))
        require(all(([r.rfm_segment], [r.lifecycle_stage]) == wanted for r in rows), name,
                "a row outside the filter")
        risks = [r.value_at_risk for r in rows]
        require(risks == sorted(risks, reverse=True), name, "rows not ordered by value at risk")
    elif name == "summarize":
        total = response.totals.relationships
        require(total > 0, name, "an empty book")
        require(sum(g.totals.relationships for g in response.by_segment) == total, name,
                "segments do not add up to the total")
        require(response.index.model_version > 0, name, "index of model version 0 (not yet checked)")
    elif name == "score-batch":
        ids = list(request.relationship_ids)
        got = [s.relationship_id for s in response.scores]
        require(got == ids, name, f"{len(got)} scores for {len(ids)} ids, or out of order")
        for i, score in enumerate(response.scores):
            check_score(f"{name}[{i}]", score, ids[i])


def wait_serving(args):
    """Polls grpc.health.v1 until the server reports SERVING."""
    import grpc

    target, seconds = args.target, args.seconds
    with grpc.insecure_channel(target) as channel:
        poll_health(channel, target, seconds)
    print(f"{target} SERVING")


def poll_health(channel, target, seconds):
    import grpc

    check_health = channel.unary_unary("/grpc.health.v1.Health/Check",
                                       request_serializer=None, response_deserializer=None)
    deadline = time.monotonic() + seconds
    last = "no answer"
    # Scoring turns SERVING once a model is active; "" (liveness) is SERVING
    # while the demo book still loads and trains. A server that does not know
    # the service name answers NOT_FOUND: then "" is all there is to ask.
    service = b"rapport.v1.Scoring"
    while True:
        try:
            # HealthCheckRequest{service} is field 1; SERVING is field 1 = 1.
            request = b"\x0a" + bytes([len(service)]) + service if service else b""
            answer = check_health(request, timeout=5)
            if answer == b"\x08\x01":
                return
            last = f"health answer {answer!r}"
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND and service:
                service = b""
                continue
            last = f"{e.code().name}: {e.details()}"
        if time.monotonic() > deadline:
            raise Failed(f"{target} not SERVING after {seconds} s ({last})")
        time.sleep(1)


def verify(args):
    import grpc

    pb = load_messages(args.out)
    targets = {}
    with open(os.path.join(args.out, "targets.tsv")) as tsv:
        for line in tsv:
            name, _, file, _ = line.rstrip("\n").split("\t")
            targets[name] = file
    names = args.rpc or list(targets)
    with grpc.insecure_channel(args.target) as channel:
        for name in names:
            path, response_type, _ = TARGETS[name]
            with open(targets[name], "rb") as f:
                message = unframe(f.read(), name)
            request = getattr(pb, REQUESTS[name]).FromString(message)
            # The exact bytes h2load posts, not a re-encoding of them.
            call = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
            try:
                answer, state = call.with_call(message, timeout=10)
            except grpc.RpcError as e:
                raise Failed(f"{name}: grpc-status {e.code().value[0]} {e.code().name}: {e.details()}")
            require(state.code() == grpc.StatusCode.OK, name, f"status {state.code()}")
            check(name, request, getattr(pb, response_type).FromString(answer))
            print(f"{name}\tok\t{len(answer) + 5}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="compile the proto and write the bodies")
    b.add_argument("--proto-root", required=True, help="the folder holding rapport/v1/rapport.proto")
    b.add_argument("--out", required=True)
    b.add_argument("--id", default="c-000000", help="relationship id of the unary bodies")
    b.add_argument("--batch-ids", default="", help="comma-separated ids of ScoreBatch")
    b.add_argument("--discover", default="", help="HOST:PORT of a demo-book server to take the batch ids from")
    b.add_argument("--batch-size", type=int, default=100, help="ids --discover takes")
    b.add_argument("--query-segment", default="Loyal", help="RFM segment of the query body's filter")
    b.add_argument("--query-stage", default="LIFECYCLE_STAGE_AT_RISK", help="life-cycle stage of the query body's filter")
    v = sub.add_parser("verify", help="send each body through grpcio and check the answer")
    v.add_argument("--target", required=True, help="HOST:PORT")
    v.add_argument("--out", required=True, help="the folder `build` wrote")
    v.add_argument("--rpc", action="append", choices=sorted(TARGETS), help="only this body (repeatable)")
    w = sub.add_parser("wait", help="wait for health SERVING")
    w.add_argument("--target", required=True, help="HOST:PORT")
    w.add_argument("--seconds", type=float, default=300)
    args = parser.parse_args()
    try:
        {"build": build, "verify": verify, "wait": wait_serving}[args.command](args)
    except Failed as e:
        print(f"VERIFY FAILED against {getattr(args, 'target', '?')}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
