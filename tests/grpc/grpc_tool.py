"""A real gRPC server and client (grpcio) for the portcullis end-to-end tests.

    python3 grpc_tool.py server
        Serves h2c on 127.0.0.1 (a free port) and prints one JSON line,
        {"port": PORT}, then serves until stdin closes. Methods (raw bytes,
        no protobuf needed):
          /todo.Todos/Get   unary: answers JSON with the request and the
                            identity metadata the proxy added
          /todo.Todos/List  server streaming: three JSON messages
    python3 grpc_tool.py call TARGET METHOD [--token T] [--stream]
        Calls METHOD at TARGET (host:port, h2c) and prints one JSON line:
        {"code": "OK"|status name, "details": str, "messages": [...],
         "trailing": {...}}.
"""

import json
import sys
import threading
from concurrent import futures

import grpc

IDENTITY = ("x-auth-subject", "x-auth-scopes")


def identity(context):
    return {k: v for k, v in context.invocation_metadata() if k in IDENTITY}


def get(request, context):
    return json.dumps({"echo": request.decode(), "identity": identity(context)}).encode()


def list_(request, context):
    for n in range(3):
        yield json.dumps({"n": n, "identity": identity(context)}).encode()


def serve():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handlers = {
        "Get": grpc.unary_unary_rpc_method_handler(get),
        "List": grpc.unary_stream_rpc_method_handler(list_),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("todo.Todos", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(json.dumps({"port": port}), flush=True)
    # Stop when the test that started us is gone (its pipe closes).
    threading.Thread(target=lambda: (sys.stdin.read(), server.stop(0)), daemon=True).start()
    server.wait_for_termination()


def call(target, method, token, stream):
    metadata = [("authorization", f"Bearer {token}")] if token else []
    out = {"code": "OK", "details": "", "messages": [], "trailing": {}}
    with grpc.insecure_channel(target) as channel:
        try:
            if stream:
                responses = channel.unary_stream(method)(b"hello", metadata=metadata, timeout=10)
                out["messages"] = [json.loads(m) for m in responses]
                out["trailing"] = dict(responses.trailing_metadata() or ())
            else:
                response, info = channel.unary_unary(method).with_call(b"hello", metadata=metadata, timeout=10)
                out["messages"] = [json.loads(response)]
                out["trailing"] = dict(info.trailing_metadata() or ())
        except grpc.RpcError as error:
            out["code"] = error.code().name
            out["details"] = error.details() or ""
            out["trailing"] = dict(error.trailing_metadata() or ())
            out["initial"] = dict(error.initial_metadata() or ())
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["server"]:
        serve()
    elif sys.argv[1:2] == ["call"]:
        args = sys.argv[2:]
        token = args[args.index("--token") + 1] if "--token" in args else None
        call(args[0], args[1], token, "--stream" in args)
    else:
        sys.exit(__doc__)
