"""Smoke check of the official MCP Python SDK against the e2e MCP server, without auth.

Connects with streamable HTTP to the URL given as the only argument, lists the
tools and calls `add`. Prints one JSON object on stdout and exits 0 only when the
tool list contains `add` and `add(2, 3)` returned the text "5".

Invariant: it talks to the server exactly as a real client does (the SDK's
default connection mode, which probes and falls back as it sees fit); nothing in
the server or the SDK is stubbed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from importlib.metadata import version

from mcp import Client
from mcp.types import TextContent


async def run(mcp_url: str) -> dict[str, object]:
    """Connect, list tools, call `add`, and describe what happened."""
    async with Client(mcp_url) as client:
        tools = await client.list_tools()
        names = sorted(tool.name for tool in tools.tools)
        result = await client.call_tool("add", {"a": 2, "b": 3})
        texts = [block.text for block in result.content if isinstance(block, TextContent)]
        return {
            "sdk": "mcp",
            "sdk_version": version("mcp"),
            "protocol_version": client.protocol_version,
            "tools": names,
            "add_result": texts,
            "is_error": bool(result.is_error),
        }


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: smoke.py <mcp-url>", file=sys.stderr)
        return 2
    report = asyncio.run(run(sys.argv[1]))
    ok = "add" in report["tools"] and report["add_result"] == ["5"] and not report["is_error"]
    report["ok"] = ok
    print(json.dumps(report))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
