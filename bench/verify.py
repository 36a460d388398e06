"""`python -m bench verify`: what verifying a token costs in process, per call: an action token, a
user's bearer JWT seen for the first time (HS256, and RS256, ES256, EdDSA with the provider's keys)
and a bearer seen before (the remembered answer, through `from_header` as the views call it).
Runs as a plain script too (`python bench/verify.py`), so the same file can time older code."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: the app beside it, unless PYTHONPATH names another
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from app.auth import UserAuth
from app.tokens import ActionTokens

USER_SECRET = b"bench-user-jwt-secret-0123456789abcdef"  # made up for this process, verifies nothing else
ACTION_SECRET = b"bench-action-secret-0123456789abcdef!!"


def per_call(run: Callable[[], None], calls: int, rounds: int) -> float:
    """Median over `rounds` of the microseconds per call of `run` (which makes `calls` calls)."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        run()
        samples.append((time.perf_counter_ns() - start) / calls / 1000)
    return statistics.median(samples)


def action_tokens(calls: int, rounds: int) -> float:
    tokens = ActionTokens(ACTION_SECRET)
    pool = [
        tokens.issue(user_id=f"u{i}", action_type="COMPLETE_QUEST", action_id=f"a{i}", score_increment=100)[0]
        for i in range(calls)
    ]

    def run() -> None:
        verify = tokens.verify
        for token in pool:
            verify(token)

    return per_call(run, calls, rounds)


def first_sight(make_auth: Callable[[], UserAuth], pool: list[str], rounds: int) -> float:
    """Each token verified once by a verifier that remembers none yet."""

    def run() -> None:
        verify = make_auth().verify
        for token in pool:
            verify(token)

    return per_call(run, len(pool), rounds)


def remembered(auth: UserAuth, token: str, calls: int, rounds: int) -> float:
    """The same bearer again and again, as `Authorization` of the views (async since JWKS)."""
    header = f"Bearer {token}"
    from_header: Any = auth.from_header
    if not inspect.iscoroutinefunction(from_header):

        def run() -> None:
            for _ in range(calls):
                from_header(header)

        return per_call(run, calls, rounds)

    async def calls_awaited() -> list[float]:
        samples = []
        for _ in range(rounds):
            start = time.perf_counter_ns()
            for _ in range(calls):
                await from_header(header)
            samples.append((time.perf_counter_ns() - start) / calls / 1000)
        return samples

    return statistics.median(asyncio.run(calls_awaited()))


def provider_cases(calls: int, rounds: int) -> dict[str, float]:
    """RS256, ES256, EdDSA seen for the first time, with the provider's keys held (none fetched here)."""
    try:
        import jwt
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

        from app.identity import ProviderKeys
    except ImportError:  # code from before the identity provider
        return {}
    keys: dict[str, Any] = {
        "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "EdDSA": ed25519.Ed25519PrivateKey.generate(),
    }
    jwks = [
        jwt.algorithms.RSAAlgorithm.to_jwk(keys["RS256"].public_key(), as_dict=True),
        jwt.algorithms.ECAlgorithm.to_jwk(keys["ES256"].public_key(), as_dict=True),
        jwt.algorithms.OKPAlgorithm.to_jwk(keys["EdDSA"].public_key(), as_dict=True),
    ]
    document = {"keys": [{**jwk, "kid": alg} for jwk, alg in zip(jwks, keys, strict=True)]}
    provider = ProviderKeys("https://id.example/jwks.json")
    provider.load(json.dumps(document).encode())
    now = int(time.time())
    results = {}
    for alg, key in keys.items():
        pool = [
            jwt.encode(
                {"sub": f"u{i}", "exp": now + 3600, "iss": "https://id.example/", "aud": "scoreboard"},
                key,
                algorithm=alg,
                headers={"kid": alg},
            )
            for i in range(calls)
        ]

        def make() -> UserAuth:
            return UserAuth(None, provider=provider, issuer="https://id.example/", audience="scoreboard")

        results[f"bearer {alg}, first sight"] = first_sight(make, pool, rounds)
    return results


def measure(calls: int, rounds: int) -> dict[str, float]:
    """Microseconds per call of each case."""
    issuer = UserAuth(USER_SECRET)
    bearers = [issuer.issue(f"u{i}", name=f"Player {i}") for i in range(calls)]
    results = {
        "action token": action_tokens(calls, rounds),
        "bearer HS256, first sight": first_sight(lambda: UserAuth(USER_SECRET), bearers, rounds),
        "bearer, remembered (from_header)": remembered(issuer, bearers[0], calls, rounds),
    }
    results.update(provider_cases(max(calls // 4, 1), rounds))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench verify", description=__doc__)
    parser.add_argument("--calls", type=int, default=2000, help="calls per round (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds; the median is shown (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.rounds < 1:
        raise SystemExit("bench verify: --calls and --rounds >= 1")
    results = measure(args.calls, args.rounds)
    if args.json:
        print(json.dumps({name: round(value, 2) for name, value in results.items()}))
    else:
        for name, value in results.items():
            print(f"{name:36} {value:8.2f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
