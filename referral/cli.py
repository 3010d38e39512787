"""The `referral` command: serve, migrate, merchants, keys, seed-demo, dev reset.

With DATABASE_URL unset, every command uses the embedded PostgreSQL under `.referral/` and
the dev secrets made there once. With DATABASE_URL set, secrets must come from the
environment (REFERRAL_HASHIDS_SALT, REFERRAL_CLICK_TOKEN_KEY, REFERRAL_IP_HASH_KEY).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import os
import shutil
import socket
import sys
from collections.abc import Iterator

from referral import settings as settings_module
from referral.lib import devstate
from referral.lib.db import MigrationError, create_pool, migrate
from referral.lib.embedded import EmbeddedPostgres, ensure_database
from referral.settings import Settings, SettingsError

DEV_DATABASE = "referral"


class CliError(Exception):
    pass


@contextlib.contextmanager
def _database() -> Iterator[tuple[Settings, EmbeddedPostgres | None]]:
    """Settings with a reachable database: the given DATABASE_URL, or the embedded one,
    which is stopped again when the block ends."""
    if os.environ.get("DATABASE_URL"):
        yield settings_module.from_env(), None
        return
    if os.environ.get("REFERRAL_ENV") == "production":
        raise CliError("REFERRAL_ENV=production needs DATABASE_URL")
    embedded = EmbeddedPostgres(devstate.home() / "pgdata")
    print(f"starting embedded PostgreSQL in {embedded.data_dir} …", file=sys.stderr)
    embedded.start()
    try:
        asyncio.run(ensure_database(embedded.uri(), DEV_DATABASE))
        env = dict(os.environ, DATABASE_URL=embedded.uri(DEV_DATABASE))
        yield settings_module.from_env(env, dev_secrets=devstate.dev_secrets()), embedded
    finally:
        embedded.stop()


def _export(settings: Settings) -> None:
    """Hand the resolved settings to the server's worker processes."""
    os.environ.update(
        {
            "DATABASE_URL": settings.database_url,
            "REFERRAL_HASHIDS_SALT": settings.hashids_salt,
            "REFERRAL_CLICK_TOKEN_KEY": settings.click_token_key,
            "REFERRAL_IP_HASH_KEY": settings.ip_hash_key,
            "PUBLIC_BASE_URL": settings.public_base_url,
        }
    )


def _check_port_free(host: str, port: int) -> None:
    # Granian binds with SO_REUSEPORT, so a stale instance would silently share the port.
    probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    # SO_REUSEADDR: connections of a server stopped a moment ago (TIME_WAIT) do not make the
    # port busy; a socket still listening on it does.
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise CliError(
                f"port {port} on {host} is busy: is another `make run` still "
                f"running? Stop it, or pick another port with --port"
            ) from None
        raise
    finally:
        probe.close()


async def _seed(settings: Settings):
    from referral.demo.seed import seed_demo
    from referral.runtime import Runtime

    await migrate(settings.database_url)
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        return await seed_demo(
            pool, runtime=Runtime.build(settings, pool), keys=devstate.demo_keys()
        )
    finally:
        await pool.close()


def cmd_serve(args: argparse.Namespace) -> None:
    from granian import Granian
    from granian.constants import Interfaces, Loops

    _check_port_free(args.host, args.port)
    # Printed links and QR codes point at this server unless a public URL is set.
    os.environ.setdefault("PUBLIC_BASE_URL", f"http://{args.host}:{args.port}")
    with _database() as (settings, embedded):
        if embedded is not None:
            from referral.demo.seed import banner

            demo = asyncio.run(_seed(settings))
            os.environ["REFERRAL_DEMO_PAGES"] = "1"
            print(banner(demo, settings.public_base_url), flush=True)
        else:
            asyncio.run(migrate(settings.database_url))
        _export(settings)
        Granian(
            "referral.app:asgi",
            factory=True,
            address=args.host,
            port=args.port,
            interface=Interfaces.ASGI,
            workers=args.workers,
            loop=Loops.uvloop,
            log_access=False,
            workers_kill_timeout=30,
        ).serve()


def cmd_migrate(args: argparse.Namespace) -> None:
    with _database() as (settings, embedded):
        applied = asyncio.run(migrate(settings.database_url))
        print(
            f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else "")
        )


def cmd_seed_demo(args: argparse.Namespace) -> None:
    from referral.demo.seed import banner

    with _database() as (settings, embedded):
        print(banner(asyncio.run(_seed(settings)), settings.public_base_url))


async def _merchants_create(settings: Settings, name: str) -> None:
    import asyncpg

    from referral.lib.ids import PublicIds
    from referral.merchants import service

    await migrate(settings.database_url)
    conn = await asyncpg.connect(settings.database_url)
    try:
        created = await service.create_merchant(conn, name=name)
    finally:
        await conn.close()
    ids = PublicIds(settings.hashids_salt)
    for mode, merchant in created.items():
        print(f"{mode:5} merchant  {ids.encode('merchant', merchant.id)}")
    print("create keys with: referral keys create --merchant <id> --kind secret")


def cmd_merchants_create(args: argparse.Namespace) -> None:
    with _database() as (settings, embedded):
        asyncio.run(_merchants_create(settings, args.name))


async def _keys_create(settings: Settings, merchant: str, kind: str, label: str) -> None:
    import asyncpg

    from referral.lib.errors import NotFound
    from referral.lib.ids import PublicIds
    from referral.merchants import service

    try:
        merchant_id = PublicIds(settings.hashids_salt).decode("merchant", merchant)
    except NotFound as exc:
        raise CliError(exc.detail) from None
    conn = await asyncpg.connect(settings.database_url)
    try:
        raw = await service.create_key(conn, merchant_id=merchant_id, kind=kind, label=label)
    except LookupError:
        raise CliError(f"no merchant {merchant}") from None
    finally:
        await conn.close()
    print(raw)
    print("store it now: only its hash is kept", file=sys.stderr)


def cmd_keys_create(args: argparse.Namespace) -> None:
    with _database() as (settings, embedded):
        asyncio.run(_keys_create(settings, args.merchant, args.kind, args.label))


async def _release_due(settings: Settings) -> int:
    from referral.lib.ids import PublicIds
    from referral.rewards.service import release_due

    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        return await release_due(pool, ids=PublicIds(settings.hashids_salt))
    finally:
        await pool.close()


def cmd_rewards_release_due(args: argparse.Namespace) -> None:
    """For cron: approve every reward whose hold has passed (the app also does this)."""
    with _database() as (settings, embedded):
        print(f"released {asyncio.run(_release_due(settings))} reward(s)")


def cmd_payouts(args: argparse.Namespace) -> None:
    from datetime import datetime
    from pathlib import Path

    from referral.lib.errors import AppError
    from referral.payouts import cli as payouts

    with _database() as (settings, _):
        try:
            if args.action == "create":
                cutoff = datetime.fromisoformat(args.cutoff) if args.cutoff else None
                asyncio.run(
                    payouts.create(settings, args.merchant, args.currency, args.kind, cutoff)
                )
            elif args.action == "export":
                asyncio.run(
                    payouts.export_csv(
                        settings,
                        args.batch,
                        Path(args.output),
                        args.format,
                        args.part,
                        args.rewards,
                        args.bom,
                    )
                )
            else:
                asyncio.run(payouts.mark_paid(settings, args.batch, args.actor))
        except AppError as exc:
            raise CliError(f"{exc.detail} ({exc.code})") from None
        except (LookupError, ValueError) as exc:
            raise CliError(str(exc)) from None


def cmd_dev_reset(args: argparse.Namespace) -> None:
    if os.environ.get("DATABASE_URL"):
        raise CliError("dev reset only wipes the embedded database; DATABASE_URL is set")
    data_dir = devstate.home() / "pgdata"
    EmbeddedPostgres(data_dir).stop()
    shutil.rmtree(data_dir, ignore_errors=True)
    print(
        f"removed {data_dir}; the next `make run` starts from an empty database "
        "(secrets and demo keys are kept)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="referral", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API (embedded PostgreSQL without DATABASE_URL)")
    serve.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    serve.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", "1")))
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("migrate", help="apply pending migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("seed-demo", help="create the demo merchant, program and advocate").set_defaults(
        func=cmd_seed_demo
    )

    merchants = sub.add_parser("merchants", help="manage merchants").add_subparsers(
        dest="action", required=True
    )
    create = merchants.add_parser("create", help="create a merchant (live and test)")
    create.add_argument("--name", required=True)
    create.set_defaults(func=cmd_merchants_create)

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(
        dest="action", required=True
    )
    key = keys.add_parser("create", help="create an API key and print it once")
    key.add_argument("--merchant", required=True, help="merchant id (mer_…)")
    key.add_argument("--kind", choices=["secret", "publishable"], default="secret")
    key.add_argument("--label", default="")
    key.set_defaults(func=cmd_keys_create)

    rewards = sub.add_parser("rewards", help="reward operations").add_subparsers(
        dest="action", required=True
    )
    rewards.add_parser(
        "release-due", help="approve rewards whose hold has passed (cron)"
    ).set_defaults(func=cmd_rewards_release_due)

    payouts = sub.add_parser("payouts", help="payout batches for finance").add_subparsers(
        dest="action", required=True
    )
    create_batch = payouts.add_parser("create", help="collect approved rewards into a batch")
    create_batch.add_argument("--merchant", required=True, help="merchant id (mer_…)")
    create_batch.add_argument("--currency", required=True)
    create_batch.add_argument("--kind", choices=["cash", "store_credit"], default="cash")
    create_batch.add_argument("--cutoff", help="ISO 8601 time: rewards approved up to then")
    create_batch.set_defaults(func=cmd_payouts)
    export_batch = payouts.add_parser("export", help="write a batch's CSV")
    export_batch.add_argument("batch", help="payout batch id (pay_…)")
    export_batch.add_argument("-o", "--output", required=True)
    export_batch.add_argument("--format", choices=["standard", "paypal"], default="standard")
    export_batch.add_argument("--part", type=int, default=1, help="PayPal part (5,000 rows each)")
    export_batch.add_argument("--rewards", action="store_true", help="the per-reward CSV")
    export_batch.add_argument("--bom", action="store_true", help="start with a UTF-8 BOM")
    export_batch.set_defaults(func=cmd_payouts)
    paid = payouts.add_parser("mark-paid", help="mark a batch paid (idempotent)")
    paid.add_argument("batch", help="payout batch id (pay_…)")
    paid.add_argument("--actor", default="cli")
    paid.set_defaults(func=cmd_payouts)

    dev = sub.add_parser("dev", help="local development").add_subparsers(
        dest="action", required=True
    )
    dev.add_parser("reset", help="wipe the embedded database").set_defaults(func=cmd_dev_reset)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (CliError, SettingsError, MigrationError) as exc:
        print(f"referral: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
