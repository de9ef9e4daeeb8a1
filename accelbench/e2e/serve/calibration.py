"""A calibration source: OpenAI-compatible completions and chat completions endpoints that stream one token every
`interval` seconds, exactly `tokens` of them, with the usage chunk at the end. What the load
generator measures against it is known in advance, so the generator's own error, and the load at
which the generator (not the server) becomes the limit, can be measured (tests/test_serve.py).

    python -m accelbench.e2e.serve.calibration --port PORT --interval-ms MS

Each stream sleeps on the event loop's clock to an absolute schedule (start + k x interval), so a
late wake-up does not delay the tokens after it: the source keeps its rate as long as its loop can.
"""
from __future__ import annotations

import argparse
import asyncio
import json

from aiohttp import web


def _chunk(text: str, usage: dict | None = None, chat: bool = False) -> bytes:
    choice = {"index": 0, "delta": {"content": text}} if chat else {"index": 0, "text": text}
    body = {"id": "calibration", "object": "chat.completion.chunk" if chat else "text_completion",
            "model": "calibration", "choices": [] if usage else [choice]}
    if usage:
        body["usage"] = usage
    return f"data: {json.dumps(body)}\n\n".encode()


def app(interval_s: float) -> web.Application:
    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        chat = request.path.endswith("/chat/completions")
        tokens = int(body.get("max_tokens", 16))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for k in range(tokens):
            await asyncio.sleep(max(0.0, start + (k + 1) * interval_s - loop.time()))
            await response.write(_chunk(" tok", chat=chat))
        prompt = body.get("prompt") or " ".join(m.get("content", "") for m in body.get("messages", []))
        await response.write(_chunk("", {"prompt_tokens": len(str(prompt).split()), "completion_tokens": tokens,
                                         "total_tokens": len(str(prompt).split()) + tokens}, chat=chat))
        await response.write(b"data: [DONE]\n\n")
        return response

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    application = web.Application()
    application.add_routes([web.post("/v1/completions", completions), web.post("/v1/chat/completions", completions),
                            web.get("/health", health)])
    return application


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interval-ms", type=float, required=True)
    args = parser.parse_args()
    web.run_app(app(args.interval_ms / 1000.0), host="127.0.0.1", port=args.port, print=None,
                access_log=None)


if __name__ == "__main__":
    main()
