"""routes.yaml → Table: load, expand, validate against the schema, check meaning, resolve.

Every problem is collected before failing, so one `check` run shows them all.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from access.keys import EndpointRule, KeyRing, Principal, digest
from dsl import loader, redaction_rules
from dsl.errors import ConfigError, KeyPath, Problem
from dsl.handler_rules import HandlerRules, RouteCheck, RouteOptions
from dsl.table import (
    Agent,
    BreakerSettings,
    Budget,
    LimitSettings,
    McpLoop,
    McpServer,
    OverflowSettings,
    Provider,
    Rates,
    RetryPolicy,
    Route,
    ServerSettings,
    StateSettings,
    Table,
    Target,
)
from dsl.units import parse_duration, parse_size, parse_timestamp
from dsl.validate import validate
from redaction.policy import Policy

ADMIN = "admin"  # the client_token's principal name
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(\*?)\}")
_ANTHROPIC_VERSION = "2023-06-01"
MAX_WORKERS = 64  # server.workers' bound in the schema, and `auto`'s


def compile_file(
    file: str, env: Mapping[str, str] | None = None, *, handlers: Iterable[HandlerRules]
) -> Table:
    """Compile `file` or raise ConfigError naming every problem with file, line and key.

    `handlers` are the rules of the handlers a route may name (handlers.registry has them).
    """
    env = os.environ if env is None else env
    rules = {r.name: r for r in handlers}
    doc = loader.load(file, env)
    problems = list(doc.problems)
    if doc.data is None or not isinstance(doc.data, dict):
        problems.append(doc.problem((), "the file must be a mapping with version and routes"))
        raise ConfigError(problems)
    problems += validate(doc, "routes", handlers=tuple(rules))
    return _Compiler(doc, env, problems, rules).compile()


def _workers(value: int | str) -> int:
    """`auto` is one per core this process may run on (its CPU affinity), at most MAX_WORKERS."""
    if value == "auto":
        return max(1, min(len(os.sched_getaffinity(0)), MAX_WORKERS))
    return int(value)


def declared_secrets(doc: loader.Document) -> Path | None:
    """The secrets file routes.yaml names (relative to routes.yaml), or None."""
    name = doc.data.get("secrets") if isinstance(doc.data, dict) else None
    return Path(doc.file).parent / name if isinstance(name, str) else None


class _Compiler:
    def __init__(
        self,
        doc: loader.Document,
        env: Mapping[str, str],
        problems: list[Problem],
        handlers: Mapping[str, HandlerRules],
    ) -> None:
        self.doc = doc
        self.handlers = handlers
        self.env = env
        self.data: dict[str, Any] = doc.data
        self.problems = problems
        self.warnings: list[Problem] = []
        # With schema errors, meaning is still checked (so that one run reports a dangling
        # reference next to a typo), but parts whose shape is wrong are skipped, not crashed on.
        self.tolerant = bool(problems)
        self.secrets_doc: loader.Document | None = None
        self.retry = RetryPolicy()  # the top-level `retry:`, which agents and routes override
        self.breakers = BreakerSettings()  # the top-level `breakers:`, which providers override
        self.policies: Mapping[str, Policy] = MappingProxyType({})  # `redaction.policies`
        self.agent_policies: Mapping[str, Policy] = MappingProxyType({})  # the agents' choices

    @contextlib.contextmanager
    def part(self) -> Iterator[None]:
        """Check one provider, agent or route; tolerate a malformed one the schema already reported."""
        try:
            yield
        except (KeyError, TypeError, ValueError, AttributeError):
            if not self.tolerant:
                raise

    def error(self, path: KeyPath, message: str) -> None:
        self.problems.append(self.doc.problem(path, message))

    def warn(self, path: KeyPath, message: str) -> None:
        self.warnings.append(self.doc.problem(path, message))

    def compile(self) -> Table:
        secrets: dict[str, Any] = {}
        server = _DEFAULT_SERVER
        with self.part():
            secrets = self._secrets()
        with self.part():
            server = self._server()
        with self.part():
            self.retry = _retry(_section(self.data, "retry"), RetryPolicy())
        with self.part():
            self.breakers = _breakers(_section(self.data, "breakers"), BreakerSettings())
        with self.part():
            self.policies = redaction_rules.policies(self.data, secrets, self)
            self.agent_policies = redaction_rules.agent_policies(self.data, self.policies, self)
        providers, skipped = self._providers(_section(secrets, "provider_keys"))
        mcp_servers = self._mcp_servers(_section(secrets, "mcp_servers"))
        agents = self._agents(providers, skipped, mcp_servers)
        routes = self._routes(providers, skipped)
        keys = self._keyring(secrets)
        state = StateSettings()
        limits = LimitSettings()
        with self.part():
            state = _state(self.data.get("state", "memory"))
        with self.part():
            limits = self._limits(providers, skipped, agents, _section(secrets, "api_keys"))
        if self.problems:
            raise ConfigError(self.problems)
        return Table(
            source=self.doc.file,
            server=server,
            providers=MappingProxyType(providers),
            agents=MappingProxyType(agents),
            routes=tuple(routes),
            keys=keys,
            warnings=tuple(self.warnings),
            models=MappingProxyType(_section(self.data, "models")),
            catalog_ttl=parse_duration(_section(self.data, "catalog").get("ttl", "300s")),
            catalog_timeout=parse_duration(_section(self.data, "catalog").get("timeout", "5s")),
            profiling_enabled=bool(_section(self.data, "debug").get("profiling_enabled", False)),
            breakers=self.breakers,
            retry=self.retry,
            state=state,
            limits=limits,
            mcp_servers=MappingProxyType(mcp_servers),
            latency_ranked=any(agent.strategy == "least-latency" for agent in agents.values()),
        )

    def _secrets(self) -> dict[str, Any]:
        path = declared_secrets(self.doc)
        if path is None:
            self.warn((), "no secrets file declared: authenticated routes will answer 401")
            return {}
        if not path.exists():
            # Serving on without it would lock every client out and drop the provider keys;
            # a reload keeps the keys it has instead.
            self.error(
                ("secrets",),
                f"secrets file {path} not found (start from secrets.example.yaml, "
                "or remove 'secrets:' to serve with every authenticated route answering 401)",
            )
            return {}
        try:
            secrets_doc = self.secrets_doc = loader.load(str(path), self.env)
        except ConfigError as exc:
            self.problems.extend(exc.problems)
            return {}
        found = secrets_doc.problems + validate(secrets_doc, "secrets", show_values=False)
        if secrets_doc.data is None:
            return {}
        if found:
            self.problems.extend(found)
            return {}
        return secrets_doc.data

    def _keyring(self, secrets: Mapping[str, Any]) -> KeyRing:
        """Principals by token digest. Problems in the secrets file are reported without values."""
        entries: dict[bytes, Principal] = {}
        token = secrets.get("client_token")
        if token:
            entries[digest(token)] = Principal(ADMIN, frozenset({"admin"}))
        for name, spec in _section(secrets, "api_keys").items():
            with self.part():
                assert self.secrets_doc is not None  # api_keys came from it
                where = ("api_keys", name)
                if name == ADMIN:
                    self.problems.append(
                        self.secrets_doc.problem(where, f"'{ADMIN}' is the client_token's name")
                    )
                    continue
                token_digest = (
                    bytes.fromhex(spec["token_sha256"]) if "token_sha256" in spec else digest(spec["token"])
                )
                if token_digest in entries:
                    clash = f"has the same token as '{entries[token_digest].name}'"
                    self.problems.append(self.secrets_doc.problem(where, clash))
                expires = spec.get("expires_at")
                entries[token_digest] = Principal(
                    name=name,
                    roles=frozenset(spec.get("roles", ["user"])),
                    allowed_agents=frozenset(spec["allowed_agents"]) if "allowed_agents" in spec else None,
                    allowed_endpoints=tuple(EndpointRule.parse(e) for e in spec["allowed_endpoints"])
                    if "allowed_endpoints" in spec
                    else None,
                    expires_at=parse_timestamp(expires) if expires else None,
                    enabled=spec.get("enabled", True),
                )
        return KeyRing(entries)

    def _limits(
        self,
        providers: Mapping[str, Provider],
        skipped: set[str],
        agents: Mapping[str, Agent],
        api_keys: Mapping[str, Any],
    ) -> LimitSettings:
        """routes.yaml `limits:` with the keys' own `limits:` and `budget:` from the secrets file."""
        spec = _section(self.data, "limits")
        for name in _section(spec, "providers"):
            self._known_provider(("limits", "providers", name), name, providers, skipped)
        for ref in _section(spec, "targets"):
            self._known_provider(("limits", "targets", ref), ref.partition("/")[0], providers, skipped)
        for name in _section(spec, "agents"):
            if name not in agents:
                self.error(("limits", "agents", name), f"unknown agent '{name}'")
        budgets = {name: Budget(float(key["budget"]["usd"]), key["budget"]["per"])
                   for name, key in api_keys.items() if "budget" in key}
        for name in budgets:
            self._warn_unpriced(name, api_keys[name], agents)
        return LimitSettings(
            providers=MappingProxyType({k: _rates(v) for k, v in _section(spec, "providers").items()}),
            targets=MappingProxyType({k: _rates(v) for k, v in _section(spec, "targets").items()}),
            agents=MappingProxyType({k: _rates(v) for k, v in _section(spec, "agents").items()}),
            keys=_rates(_section(spec, "keys")),
            own=MappingProxyType({name: _rates(key["limits"]) for name, key in api_keys.items()
                                  if "limits" in key}),
            budgets=MappingProxyType(budgets),
            output_reserve=spec.get("output_reserve", 1024),
            concurrent_lease=parse_duration(spec.get("concurrent_lease", "15m")),
        )

    def _known_provider(
        self, path: KeyPath, name: str, providers: Mapping[str, Provider], skipped: set[str]
    ) -> None:
        if name in skipped:
            self.warn(path, f"provider '{name}' is skipped: this limit applies to nothing")
        elif name not in providers:
            self.error(path, f"unknown provider '{name}'")

    def _warn_unpriced(self, name: str, key: Mapping[str, Any], agents: Mapping[str, Agent]) -> None:
        """A budget counts only priced models: name those this key may use that have no price."""
        allowed = key.get("allowed_agents")
        models: set[str] = set()
        for model in allowed if allowed is not None else agents:
            agent = agents.get(model)
            if agent is not None:
                models.update(target.model for target in agent.targets)
            else:
                models.add(model.partition("/")[2])
        registry = _section(self.data, "models")
        unpriced = sorted(m for m in models if m and not _section(registry.get(m), "price"))
        if unpriced and self.secrets_doc is not None:
            message = (f"no price in routes.yaml models: for {', '.join(unpriced)}: "
                       "their answers cost nothing against this budget")
            self.warnings.append(self.secrets_doc.problem(("api_keys", name, "budget"), message))

    def _server(self) -> ServerSettings:
        server = self.data.get("server", {})
        host, _, port = server.get("listen", "127.0.0.1:8080").rpartition(":")
        if not 0 < int(port) < 65536:
            self.error(("server", "listen"), f"port {port} is out of range")
        settings = ServerSettings(
            listen_host=host.strip("[]"),
            listen_port=int(port),
            max_body=parse_size(server.get("max_body", "32MiB")),
            drain_timeout=parse_duration(server.get("drain_timeout", "30s")),
            upstream_connections=server.get("upstream_connections", 512),
            max_header_size=parse_size(server.get("max_header_size", "64KiB")),
            body_timeout=parse_duration(server.get("body_timeout", "120s")),
            idle_timeout=parse_duration(server.get("idle_timeout", "60s")),
            max_connections=server.get("max_connections", 10000),
            access_log=server.get("access_log", True),
            max_buffered_bodies=parse_size(server.get("max_buffered_bodies", "256MiB")),
            write_buffer=parse_size(server.get("write_buffer", "1MiB")),
            workers=_workers(server.get("workers", 1)),
        )
        if settings.max_buffered_bodies < settings.max_body:
            self.error(("server", "max_buffered_bodies"),
                       "is smaller than server.max_body: no body of the largest size could be received")
        return settings

    def _providers(self, provider_keys: Mapping[str, str]) -> tuple[dict[str, Provider], set[str]]:
        providers: dict[str, Provider] = {}
        skipped: set[str] = set()
        for name, spec in _section(self.data, "providers").items():
            with self.part():
                self._provider(name, spec, provider_keys, providers, skipped)
        return providers, skipped

    def _provider(
        self,
        name: str,
        spec: dict[str, Any],
        provider_keys: Mapping[str, str],
        providers: dict[str, Provider],
        skipped: set[str],
    ) -> None:
        key = spec.get("api_key") or provider_keys.get(name)
        if "api_key" in spec and not key:
            self.warn(("providers", name, "api_key"), "key is empty (variable unset?): provider skipped")
            skipped.add(name)
            return
        fmt = spec.get("format", "openai")
        providers[name] = Provider(
            name=name,
            format=fmt,
            base_url=spec["url"].rstrip("/"),
            format_urls=MappingProxyType(dict(spec.get("format_urls", {}))),
            timeout=parse_duration(spec.get("timeout", "1h")),
            connect_timeout=parse_duration(spec.get("connect_timeout", "10s")),
            headers=_provider_headers(fmt, key, spec.get("headers", {})),
            key=key,
            breakers=self._provider_breakers(name, _section(spec, "breakers")),
            idle_timeout=parse_duration(spec.get("idle_timeout", "600s")) or None,  # 0s: none
            stream_usage=spec.get("stream_usage", True),
        )

    def _provider_breakers(self, name: str, spec: Mapping[str, Any]) -> BreakerSettings:
        """A provider's `breakers:` over the top-level ones, key by key."""
        if spec and not self.breakers.enabled and "enabled" not in spec:
            self.warn(("providers", name, "breakers"),
                      "breakers are disabled at the top level: add 'enabled: true' here for these to apply")
        return _breakers(spec, self.breakers)

    def _mcp_servers(self, credentials: Mapping[str, Any]) -> dict[str, McpServer]:
        """routes.yaml `mcp_servers:` with the secrets file's `mcp_servers:` credentials."""
        servers: dict[str, McpServer] = {}
        declared = _section(self.data, "mcp_servers")
        for name, spec in declared.items():
            with self.part():
                servers[name] = self._mcp_server(name, spec, _section(credentials, name))
        for name in credentials:
            if name not in declared and self.secrets_doc is not None:
                self.problems.append(self.secrets_doc.problem(
                    ("mcp_servers", name), f"unknown MCP server '{name}' (not in routes.yaml mcp_servers)"))
        return servers

    def _mcp_server(self, name: str, spec: dict[str, Any], credentials: Mapping[str, Any]) -> McpServer:
        headers = dict(_section(credentials, "headers"))
        if "token" in credentials:
            headers["Authorization"] = f"Bearer {credentials['token']}"
        tools = _section(spec, "tools")
        return McpServer(
            name=name,
            url=spec["url"],
            timeout=parse_duration(spec.get("timeout", "30s")),
            allow=tuple(tools.get("allow", ())),
            deny=tuple(tools.get("deny", ())),
            max_result=spec.get("max_result", 20000),
            refresh=parse_duration(spec.get("refresh", "5m")),
            headers=tuple(headers.items()),
        )

    def _agents(
        self, providers: Mapping[str, Provider], skipped: set[str], mcp_servers: Mapping[str, McpServer]
    ) -> dict[str, Agent]:
        agents: dict[str, Agent] = {}
        for name, spec in _section(self.data, "agents").items():
            with self.part():
                agents[name] = self._agent(name, spec, providers, skipped, mcp_servers)
        return agents

    def _agent(
        self,
        name: str,
        spec: dict[str, Any],
        providers: Mapping[str, Provider],
        skipped: set[str],
        mcp_servers: Mapping[str, McpServer],
    ) -> Agent:
        if name in providers:
            self.error(("agents", name), f"agent '{name}' has the name of a provider")
        targets: list[Target] = []
        weights: list[int] = []
        for i, item in enumerate(spec["models"]):
            ref = item if isinstance(item, str) else item["target"]
            provider_name, _, model = ref.partition("/")
            if provider_name in skipped:
                self.warn(("agents", name, "models", i), f"target {ref} dropped: provider skipped")
            elif provider_name not in providers:
                self.error(("agents", name, "models", i), f"unknown provider '{provider_name}' in {ref}")
            else:
                own = {} if isinstance(item, str) else item
                targets.append(Target(providers[provider_name], model, own.get("context_window"),
                                      own.get("max_output")))
                weights.append(1 if isinstance(item, str) else item.get("weight", 1))
        if not targets:
            self.warn(("agents", name), "no usable target: requests to this agent answer 503")
        hedge_after = parse_duration(spec["hedge_after"]) if "hedge_after" in spec else None
        overflow = _section(spec, "overflow")
        guard = OverflowSettings(overflow.get("enabled", True), overflow.get("margin", 0.0),
                                 _section(overflow, "trim").get("keep_last_turns"))
        registry = _section(self.data, "models")
        limits_known = any(t.model in registry or t.context_window is not None or t.max_output is not None
                           for t in targets)  # as limits.context.window_of finds them
        return Agent(name, spec.get("strategy", "fallback"), tuple(targets), tuple(weights),
                     _retry(_section(spec, "retry"), self.retry), hedge_after, guard,
                     self._mcp_loop(name, spec.get("mcp"), mcp_servers), limits_known)

    def _mcp_loop(self, agent: str, spec: Any, mcp_servers: Mapping[str, McpServer]) -> McpLoop | None:
        if spec is None:
            return None
        for i, server in enumerate(spec["servers"]):
            if server not in mcp_servers:
                self.error(("agents", agent, "mcp", "servers", i), f"unknown MCP server '{server}'")
        return McpLoop(
            servers=tuple(s for s in spec["servers"] if s in mcp_servers),
            max_iterations=spec.get("max_iterations", 10),
            max_tool_calls=spec.get("max_tool_calls", 32),
            deadline=parse_duration(spec.get("deadline", "120s")),
            parallel=spec.get("parallel", 4),
        )

    def _routes(self, providers: Mapping[str, Provider], skipped: set[str]) -> list[Route]:
        routes: list[Route] = []
        seen: dict[tuple[str, str], int] = {}
        for i, spec in enumerate(self.data.get("routes") or []):
            with self.part():
                route = self._route(i, spec, seen, providers, skipped)
                if route is not None:
                    routes.append(route)
        return routes

    def _route(
        self,
        i: int,
        spec: dict[str, Any],
        seen: dict[tuple[str, str], int],
        providers: Mapping[str, Provider],
        skipped: set[str],
    ) -> Route | None:
        path = ("routes", i)
        methods_text, _, template = spec["match"].partition(" ")
        methods = None if methods_text == "ANY" else frozenset(methods_text.split("|"))
        pattern = self._template(template, (*path, "match"))
        if pattern is None:
            return None
        handler = spec["handler"]
        # An unknown name (the schema reported it) still gets its other keys checked.
        rules = self.handlers.get(handler) or HandlerRules(handler)
        self._check_collisions(path, i, methods, template, seen)
        self._refuse_foreign_keys(path, spec, rules)
        ingress = spec.get("ingress", "openai")
        check = RouteCheck(
            spec, path, template, frozenset(pattern.groupindex), ingress, providers, frozenset(skipped), self
        )
        options: RouteOptions = {"chains": MappingProxyType({}), **rules.check(check)}
        return Route(
            match=spec["match"],
            methods=methods,
            template=template,
            pattern=pattern,
            handler=handler,
            ingress=ingress,
            auth=spec.get("auth", "none" if rules.open else "bearer") == "bearer",
            admin=spec.get("admin", rules.admin),
            line=self.doc.where(path)[0],
            stages=rules.stages + redaction_rules.route_stage(
                spec, path, rules.redaction, ingress, self.policies, self.agent_policies, self),
            retry=_retry(_section(spec, "retry"), self.retry),
            **options,
        )

    def _refuse_foreign_keys(self, path: KeyPath, spec: Mapping[str, Any], rules: HandlerRules) -> None:
        """Keys another handler takes: the first one set is refused, in its owner's words.

        Handlers that share their keys (forward, count_tokens) refuse them once. An empty
        list is as good as no key.
        """
        refused: set[tuple[tuple[str, ...], str]] = set()
        for owner in self.handlers.values():
            foreign = [k for k in owner.keys if k not in rules.keys and k in spec and spec[k] != []]
            if foreign and (owner.keys, owner.refusal) not in refused:
                refused.add((owner.keys, owner.refusal))
                message = owner.refusal.format(handler=rules.name, key=foreign[0], owner=owner.name)
                self.error((*path, foreign[0]), message)

    def _check_collisions(
        self,
        path: KeyPath,
        i: int,
        methods: frozenset[str] | None,
        template: str,
        seen: dict[tuple[str, str], int],
    ) -> None:
        """Two routes collide when a method overlaps and the paths differ only in parameter names."""
        shape = _PARAM.sub(lambda m: "{*}" if m.group(2) else "{}", template)
        for method in sorted(methods) if methods else ["ANY"]:
            for other in (method, "ANY") if method != "ANY" else ["ANY", *_ALL_METHODS]:
                clash = seen.get((other, shape))
                if clash is not None:
                    self.error((*path, "match"), f"collides with routes[{clash}] ({other} {template})")
                    break
            seen.setdefault((method, shape), i)

    def _template(self, template: str, path: KeyPath) -> re.Pattern[str] | None:
        """'/proxy/{provider}/{path*}' → a regex with named groups; None (and an error) if malformed."""
        out, last = "^", 0
        names: set[str] = set()
        for match in _PARAM.finditer(template):
            name, rest = match.group(1), match.group(2)
            if name in names:
                self.error(path, f"parameter {{{name}}} appears twice")
                return None
            if rest and match.end() != len(template):
                self.error(path, f"{{{name}*}} must be the last part of the path")
                return None
            names.add(name)
            out += re.escape(template[last : match.start()])
            out += f"(?P<{name}>.*)" if rest else f"(?P<{name}>[^/]+)"
            last = match.end()
        literal = template[last:]
        if "{" in literal or "}" in literal:
            self.error(path, "malformed {parameter} in path")
            return None
        return re.compile(out + re.escape(literal) + "$")


def _section(data: Any, key: str) -> dict[str, Any]:
    """A mapping section, or {} when absent or malformed (the schema reports the latter)."""
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


_DEFAULT_SERVER = ServerSettings("127.0.0.1", 8080, 32 * 1024 * 1024, 30.0, 512)
_ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def _provider_headers(fmt: str, key: str | None, extra: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    headers: list[tuple[str, str]] = []
    if fmt == "anthropic":
        headers.append(("anthropic-version", _ANTHROPIC_VERSION))
        if key:
            headers.append(("x-api-key", key))
    elif key:
        headers.append(("Authorization", f"Bearer {key}"))
    headers.extend(extra.items())
    return tuple(headers)


_BREAKER_DURATIONS = ("window", "cooldown", "max_cooldown", "key_refused_cooldown")


def _breakers(spec: Mapping[str, Any], defaults: BreakerSettings) -> BreakerSettings:
    """A `breakers:` block over `defaults` (the top-level block, for providers; the schema
    checked the shapes)."""
    values = {name: parse_duration(spec[name]) if name in _BREAKER_DURATIONS else spec[name]
              for name in BreakerSettings.__dataclass_fields__ if name in spec}
    return replace(defaults, **values)


def _state(spec: str | Mapping[str, Any]) -> StateSettings:
    """routes.yaml `state:`: a url alone, or {url, timeout, on_state_error, breaker_sync}."""
    if isinstance(spec, str):
        return StateSettings(url=spec)
    return StateSettings(
        url=spec["url"],
        timeout=parse_duration(spec.get("timeout", "250ms")),
        on_state_error=spec.get("on_state_error", "allow"),
        breaker_sync=parse_duration(spec.get("breaker_sync", "250ms")),
    )


def _rates(spec: Mapping[str, Any]) -> Rates:
    return Rates(spec.get("rpm"), spec.get("tpm"), spec.get("concurrent"))


def _retry(spec: Mapping[str, Any], defaults: RetryPolicy) -> RetryPolicy:
    """A `retry:` block over `defaults` (the top-level block, for agents and routes)."""
    backoff = _section(spec, "backoff")
    values: dict[str, Any] = {
        name: parse_duration(backoff[name]) for name in ("base", "cap") if name in backoff
    }
    if "attempts" in spec:
        values["attempts"] = spec["attempts"]
    if "when" in spec:
        values["when"] = frozenset(str(item) for item in spec["when"])
    if "deadline" in spec:
        values["deadline"] = parse_duration(spec["deadline"])
    return replace(defaults, **values)
