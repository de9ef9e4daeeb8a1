"""The load generator: streaming OpenAI-compatible completions over aiohttp, in a closed loop of
`concurrency` users, each sending its next request as soon as the last one ended (run_level), or
in an open loop at a request rate, Poisson or burstier (run_rate_level).

What it records per request: when it was sent, when each streamed chunk with text arrived, when
the stream ended, and the server's `usage` (prompt and completion tokens). A stream's token count
is the server's `usage.completion_tokens`; a request whose streamed chunks disagree with it by
more than the chunks a server may merge is an error, never a figure.

Its own limits are measured with every level, not assumed: the event loop's lag (a task that asks
to wake every LAG_PROBE_S and records how late it woke) and the client process's CPU time over the
level. A level where the loop lagged by more than a bound or the client kept a CPU busy is flagged
`client_limited`: its figures describe the generator, not the server (tests/test_serve.py measures
both against the calibration source).
"""
from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import aiohttp

LAG_PROBE_S = 0.005
# The generator is the limit where its loop woke later than this at the median (a backlog, not a
# neighbour's occasional time slice, which shows at the 99th percentile only), or where the
# process used this much of a CPU (its loop is one thread).
LAG_LIMIT_S = 0.005
CPU_LIMIT = 0.85
READ_BUFFER = 2**20  # aiohttp's read buffer per response: a small one splits SSE lines and costs time


@dataclass
class RequestResult:
    sent: float  # perf_counter seconds
    token_times: list[float] = field(default_factory=list)  # arrival of each chunk with text
    ended: Optional[float] = None
    prompt_tokens: Optional[int] = None  # the server's usage
    completion_tokens: Optional[int] = None
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.ended is not None

    @property
    def ttft(self) -> Optional[float]:
        return self.token_times[0] - self.sent if self.token_times else None

    @property
    def tpot(self) -> Optional[float]:
        """Mean time per output token after the first (the server's count of tokens)."""
        if not self.token_times or not self.completion_tokens or self.completion_tokens < 2:
            return None
        return (self.token_times[-1] - self.token_times[0]) / (self.completion_tokens - 1)

    @property
    def latency(self) -> Optional[float]:
        return None if self.ended is None else self.ended - self.sent

    def gaps(self) -> list[float]:
        """Inter-chunk latencies (a chunk may carry several tokens where a server merges them)."""
        return [b - a for a, b in zip(self.token_times, self.token_times[1:])]


@dataclass
class ClientLoad:
    lag_p50_s: float  # how late the event loop woke, over the level
    lag_p99_s: float
    cpu_fraction: float  # client process CPU time / wall time over the level

    @property
    def limited(self) -> bool:
        return self.lag_p50_s > LAG_LIMIT_S or self.cpu_fraction > CPU_LIMIT

    def reason(self) -> str:
        return (f"the load generator was the limit: its event loop lagged {1e3 * self.lag_p50_s:.1f} ms at the "
                f"median (bound {1e3 * LAG_LIMIT_S:.0f} ms) and its process used {self.cpu_fraction:.0%} of a CPU "
                f"(bound {CPU_LIMIT:.0%})")


@dataclass
class LevelResult:
    concurrency: int
    requests: list[RequestResult]  # measured ones (warm-up excluded), in the order they were sent
    started: float
    ended: float
    client: ClientLoad
    server_gone: Optional[str] = None  # the server stopped answering during the level
    # When the first user found no request left to send: from then on fewer than `concurrency`
    # streams run (the ramp-down), so the steady window ends here.
    drain_started: Optional[float] = None
    began: Optional[float] = None  # when the level's first request (a warm-up one) was sent
    warmup: int = 0  # requests sent first and not kept
    rate: Optional[float] = None  # an open-loop level's requests per second (concurrency 0)


async def stream_completion(session: aiohttp.ClientSession, url: str, payload: dict[str, Any],
                            timeout_s: float) -> RequestResult:
    result = RequestResult(sent=time.perf_counter())
    try:
        async with session.post(url, json=payload, timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            if response.status != 200:
                result.error = f"HTTP {response.status}: {(await response.text())[:200]}"
                return result
            async for raw in response.content:
                line = raw.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    break
                chunk = json.loads(data)
                if chunk.get("usage"):
                    result.prompt_tokens = chunk["usage"].get("prompt_tokens")
                    result.completion_tokens = chunk["usage"].get("completion_tokens")
                for choice in chunk.get("choices") or ():
                    text = choice.get("text")
                    if text is None:
                        text = (choice.get("delta") or {}).get("content")
                    if text:
                        result.token_times.append(time.perf_counter())
        result.ended = time.perf_counter()
        if result.completion_tokens is None:
            result.error = "the stream carried no usage (stream_options.include_usage)"
        elif not result.token_times:
            result.error = "no token arrived"
        elif len(result.token_times) > result.completion_tokens:
            result.error = (f"{len(result.token_times)} chunks with text but usage says "
                            f"{result.completion_tokens} tokens")
    except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError, json.JSONDecodeError) as exc:
        result.error = f"{type(exc).__name__}: {str(exc)[:200] or 'no detail'}"
    return result


async def _lag_probe(lags: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        asked = loop.time()
        await asyncio.sleep(LAG_PROBE_S)
        lags.append(loop.time() - asked - LAG_PROBE_S)


def _gone(result: RequestResult) -> bool:
    """The server is not there any more (refused, dropped), rather than one request going wrong."""
    return bool(result.error) and any(kind in result.error for kind in (
        "ConnectionRefused", "ClientConnectorError", "ServerDisconnected", "ClientPayloadError"))


class _Level:
    """What both kinds of level share: the session, the event loop's lag probe, the client's CPU,
    the results and whether the server went away."""

    def __init__(self, url: str, payload: Callable[[int], dict[str, Any]], warmup: int, timeout_s: float) -> None:
        self.url, self.payload, self.warmup, self.timeout_s = url, payload, warmup, timeout_s
        self.results: list[tuple[int, RequestResult]] = []
        self.gone: Optional[str] = None
        self.drain: Optional[float] = None

    async def send(self, session: aiohttp.ClientSession, index: int) -> None:
        result = await stream_completion(session, self.url, self.payload(index), self.timeout_s)
        if _gone(result) and self.gone is None:
            self.gone = result.error
        self.results.append((index, result))

    async def run(self, drive: Callable[[aiohttp.ClientSession], Any], concurrency: int,
                  rate: Optional[float] = None) -> LevelResult:
        lags: list[float] = []
        stop = asyncio.Event()
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        probe = asyncio.create_task(_lag_probe(lags, stop))
        async with aiohttp.ClientSession(connector=connector, read_bufsize=READ_BUFFER) as session:
            await drive(session)
        stop.set()
        await probe
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        measured = [r for i, r in sorted(self.results, key=lambda x: x[0]) if i >= self.warmup]
        lags.sort()
        lag_p50, lag_p99 = ((lags[min(len(lags) - 1, int(q * len(lags)))] for q in (0.5, 0.99)) if lags else (0.0, 0.0))
        started = min((r.sent for r in measured), default=wall0)
        ended = max((r.ended or r.sent for r in measured), default=wall0 + wall)
        return LevelResult(concurrency, measured, started, ended,
                           ClientLoad(lag_p50, lag_p99, cpu / wall if wall else 0.0), self.gone, self.drain, wall0,
                           warmup=self.warmup, rate=rate)


async def run_level(url: str, payload: Callable[[int], dict[str, Any]], concurrency: int, requests: int,
                    warmup: int, timeout_s: float) -> LevelResult:
    """`concurrency` users send `warmup + requests` requests in all (request i's body: payload(i)),
    each its next as soon as its last ended. The first `warmup` to be sent are not kept. A
    connection refused mid-level stops the level and says so."""
    level = _Level(url, payload, warmup, timeout_s)
    next_index = 0

    async def user(session: aiohttp.ClientSession) -> None:
        nonlocal next_index
        while next_index < warmup + requests and level.gone is None:
            index = next_index
            next_index += 1
            await level.send(session, index)
        if level.drain is None:
            level.drain = time.perf_counter()

    async def drive(session: aiohttp.ClientSession) -> None:
        await asyncio.gather(*(user(session) for _ in range(concurrency)))

    return await level.run(drive, concurrency)


async def run_rate_level(url: str, payload: Callable[[int], dict[str, Any]], rate: float, requests: int,
                         warmup: int, timeout_s: float, burstiness: float = 1.0, seed: int = 0) -> LevelResult:
    """An open loop: `warmup + requests` requests sent at `rate` per second on average, whatever the
    server's pace, the gaps between sends drawn from a gamma distribution of shape `burstiness`
    (1: a Poisson process; below 1 burstier, above 1 more regular), seeded. The steady window
    ends with the last send; a server that falls behind shows as requests piling up (latency)."""
    if rate <= 0 or burstiness <= 0:
        raise ValueError("rate and burstiness must be positive")
    level = _Level(url, payload, warmup, timeout_s)
    rng = random.Random(seed)

    async def drive(session: aiohttp.ClientSession) -> None:
        tasks = []
        loop = asyncio.get_running_loop()
        due = loop.time()
        for index in range(warmup + requests):
            if level.gone is not None:
                break
            await asyncio.sleep(max(0.0, due - loop.time()))  # an absolute schedule: a late wake-up does not shift the rest
            tasks.append(asyncio.create_task(level.send(session, index)))
            due += rng.gammavariate(burstiness, 1.0 / (rate * burstiness))
        level.drain = time.perf_counter()
        await asyncio.gather(*tasks)

    return await level.run(drive, concurrency=0, rate=rate)
