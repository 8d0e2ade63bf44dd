"""A local OTLP/HTTP trace receiver for tests: decodes each `POST /v1/traces` body
(`ExportTraceServiceRequest`, protobuf) with the `opentelemetry-proto` package and appends
every span to a JSON-lines file, then answers 200 with an empty `ExportTraceServiceResponse`.

Usage: otlp_receiver.py PORT OUT.jsonl
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

PORT = int(sys.argv[1])
OUT = sys.argv[2]


def value(v):
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    if kind is None:
        return None
    return getattr(v, kind)


def attributes(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/v1/traces":
            self.send_response(404)
            self.end_headers()
            return
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        lines = []
        for rs in request.resource_spans:
            resource = attributes(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    lines.append(
                        json.dumps(
                            {
                                "resource": resource,
                                "headers": {k.lower(): v for k, v in self.headers.items()},
                                "trace_id": s.trace_id.hex(),
                                "span_id": s.span_id.hex(),
                                "parent_span_id": s.parent_span_id.hex(),
                                "name": s.name,
                                "attributes": attributes(s.attributes),
                                "status": {"code": s.status.code, "message": s.status.message},
                                "events": [
                                    {"name": e.name, "attributes": attributes(e.attributes)}
                                    for e in s.events
                                ],
                                "links": [
                                    {"trace_id": l.trace_id.hex(), "span_id": l.span_id.hex()}
                                    for l in s.links
                                ],
                                "start": s.start_time_unix_nano,
                                "end": s.end_time_unix_nano,
                            }
                        )
                    )
        with open(OUT, "a") as f:
            for line in lines:
                f.write(line + "\n")
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
