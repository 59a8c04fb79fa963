"""MCP tools for agents: the sessions to the `mcp_servers`, their tool lists, the names the
models see, the calls and their results in words a model reads.

Named `toolbox`, not `mcp`, so as not to shadow the official SDK it drives. `box.Toolbox` is
what the rest of the gateway holds (runtime/process.py); `connection` keeps one server's
session, `naming` and `definitions` say how tools are offered, `results` what a call returns.
"""
