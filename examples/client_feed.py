"""Print live prices, trades and closed candles from a tickwire gateway.

Run a gateway (``make run``), then::

    python examples/client_feed.py                       # ws://127.0.0.1:3000/ws
    python examples/client_feed.py ws://host:3000/ws ETHUSDT

Stop with Ctrl-C. It keeps going through gateway restarts: the client
reconnects, subscribes again, and says when messages were missed.
"""

from __future__ import annotations

import asyncio
import sys

from tickwire import client


async def main(url: str, symbol: str) -> None:
    async with client.connect(url) as feed:
        await feed.subscribe(f"price:{symbol}", f"trades:{symbol}", f"klines:{symbol}:1m")
        async for msg in feed:
            match msg:
                case client.Price():
                    print(f"{msg.symbol} {msg.data.price} ({msg.data.changePercent24h:+}% 24h)")
                case client.Trade():
                    print(f"  trade {msg.data.side:4} {msg.data.quantity} @ {msg.data.price}")
                case client.Kline() if msg.data.isFinal:
                    k = msg.data
                    print(f"  candle closed: O {k.open} H {k.high} L {k.low} C {k.close} V {k.volume}")
                case client.Gap():
                    print(f"  ! {msg.missed} message(s) missed on {msg.channel}")
                case client.Status():
                    print(f"  ! {msg.channel} is {msg.status} {msg.reason or ''}")
                case client.Disconnected():
                    print(f"  ! disconnected ({msg.code}); retrying in {msg.retry_in} s")
                case client.Connected() if msg.resumed:
                    print("  ! reconnected; subscriptions restored")


if __name__ == "__main__":
    url = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:3000/ws"
    symbol = sys.argv[2].upper() if len(sys.argv) > 2 else "BTCUSDT"
    try:
        asyncio.run(main(url, symbol))
    except KeyboardInterrupt:
        pass
