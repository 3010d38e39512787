"""The `referral` command: serve, migrate, merchants, keys, console-link, seed-demo, dev reset.

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
import socket
import sys
from collections.abc import Iterator

from referral import settings as settings_module
from referral.lib import devstate
from referral.lib.db import MigrationError, create_pool, migrate
from referral.lib.embedded import EmbeddedPostgres, ServerInUse, ensure_database
from referral.settings import Settings, SettingsError

DEV_DATABASE = "referral"


class CliError(Exception):
    pass


@contextlib.contextmanager
def _database(*, migrated: bool = True) -> Iterator[tuple[Settings, EmbeddedPostgres | None]]:
    """Settings with a reachable database: the given DATABASE_URL, or the embedded one,
    migrated (so any command works on a fresh checkout) unless `migrated=False`.
    The embedded server is shared with every other `referral` process of this checkout
    (`make run` beside a CLI command): it is stopped when the block ends only if no other
    process still uses it."""
    if os.environ.get("DATABASE_URL"):
        yield settings_module.from_env(), None
        return
    if os.environ.get("REFERRAL_ENV") == "production":
        raise CliError("REFERRAL_ENV=production needs DATABASE_URL")
    embedded = EmbeddedPostgres(devstate.home() / "pgdata")
    print(f"using the embedded PostgreSQL in {embedded.data_dir} …", file=sys.stderr)
    embedded.start()
    try:
        asyncio.run(ensure_database(embedded.uri(), DEV_DATABASE))
        if migrated:
            asyncio.run(migrate(embedded.uri(DEV_DATABASE)))
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

    await migrate(settings.direct_database_url)
    pool = await create_pool(
        settings.database_url, pooling=settings.database_pooling, min_size=1, max_size=2
    )
    try:
        return await seed_demo(
            pool, runtime=Runtime.build(settings, pool), keys=devstate.demo_keys()
        )
    finally:
        await pool.close()


def cmd_serve(args: argparse.Namespace) -> None:
    with _metrics_dir(args.workers):
        _serve(args)


@contextlib.contextmanager
def _metrics_dir(workers: int) -> Iterator[None]:
    """With several workers, each writes its metrics to files in a fresh directory that
    `/metrics` sums (prometheus-client's multiprocess mode); set before anything imports
    the metrics, removed when the server stops. A directory given in
    PROMETHEUS_MULTIPROC_DIR is used as it is."""
    if workers <= 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield
        return
    import shutil
    import tempfile

    made = tempfile.mkdtemp(prefix="referral-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = made
    try:
        yield
    finally:
        shutil.rmtree(made, ignore_errors=True)


def _serve(args: argparse.Namespace) -> None:
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
            devstate.remember_base_url(settings.public_base_url)
        else:
            asyncio.run(migrate(settings.direct_database_url))
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
            # A crashed worker is replaced; granian stops only on a crash loop (a worker
            # dying again within seconds of its respawn).
            respawn_failed_workers=True,
        ).serve()


def cmd_migrate(args: argparse.Namespace) -> None:
    with _database(migrated=False) as (settings, embedded):
        applied = asyncio.run(migrate(settings.direct_database_url))
        print(
            f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else "")
        )


def _default_base_url() -> None:
    """Links a command prints point at the server people use: PUBLIC_BASE_URL, else
    HOST/PORT when given, else the one the last `referral serve` here printed (`PORT=8001
    make run`), else the default."""
    host, port = os.environ.get("HOST"), os.environ.get("PORT")
    served = None if host or port else devstate.served_base_url()
    default = f"http://{host or '127.0.0.1'}:{port or '8000'}"
    os.environ.setdefault("PUBLIC_BASE_URL", served or default)


def cmd_dev_env(args: argparse.Namespace) -> None:
    """The demo's key, code and ids as shell assignments, for the README's walk-through:
    `eval "$(.venv/bin/referral dev env)"`. Seeds the demo first if it is not there yet."""
    import shlex

    _default_base_url()
    with _database() as (settings, _):
        demo = asyncio.run(_seed(settings))
    values = {
        "BASE": settings.public_base_url,
        "KEY": demo.secret_key,
        "PK": demo.publishable_key,
        "MERCHANT": demo.merchants["test"],
        "PROGRAM": demo.program_id,
        "ADVOCATE": demo.advocate_id,
        "CODE": demo.code,
    }
    for name, value in values.items():
        print(f"{name}={shlex.quote(value)}")


def cmd_seed_demo(args: argparse.Namespace) -> None:
    from referral.demo.seed import banner

    with _database() as (settings, embedded):
        print(banner(asyncio.run(_seed(settings)), settings.public_base_url))


async def _merchants_create(settings: Settings, name: str) -> None:
    import asyncpg

    from referral.lib.ids import PublicIds
    from referral.merchants import service

    await migrate(settings.direct_database_url)
    conn = await asyncpg.connect(settings.direct_database_url)
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


def _merchant_command(run) -> None:
    """Run one of `referral merchants …` / `referral keys …` (referral/merchants/cli.py):
    a refusal by the service is one line on stderr and exit code 2."""
    from referral.lib.errors import AppError

    with _database() as (settings, _):
        try:
            asyncio.run(run(settings))
        except AppError as exc:
            raise CliError(exc.detail) from None


def cmd_merchants(args: argparse.Namespace) -> None:
    from referral.merchants import cli as merchants

    if args.action == "list":
        _merchant_command(merchants.list_merchants)
    elif args.action == "show":
        _merchant_command(lambda s: merchants.show_merchant(s, args.merchant, args.key))
    else:
        _merchant_command(
            lambda s: merchants.update_merchant(
                s, args.merchant, args.key, args.time_zone, args.payout_minimum
            )
        )


def cmd_keys(args: argparse.Namespace) -> None:
    from referral.merchants import cli as merchants

    if args.action == "create":

        async def create(settings: Settings) -> None:
            print(
                await merchants.create_key(
                    settings, args.merchant, args.key, args.kind, args.label, args.scope
                )
            )
            print("store it now: only its hash is kept", file=sys.stderr)

        _merchant_command(create)
    elif args.action == "list":
        _merchant_command(lambda s: merchants.list_keys(s, args.merchant, args.key))
    elif args.action == "roll":

        async def roll(settings: Settings) -> None:
            secret, old = await merchants.roll_key(
                settings, args.key_id, args.merchant, args.key, args.grace
            )
            print(secret)
            ends = old.expires_at.isoformat(timespec="seconds") if old.expires_at else "-"
            print(
                f"store it now: only its hash is kept. {old.id} ({old.hint}) works until {ends}",
                file=sys.stderr,
            )

        _merchant_command(roll)
    else:
        _merchant_command(lambda s: merchants.revoke_key(s, args.key_id, args.merchant, args.key))


def cmd_console_link(args: argparse.Namespace) -> None:
    from referral.console import cli as console

    _default_base_url()

    async def link(settings: Settings) -> None:
        print(await console.sign_in_link(settings, args.merchant, args.key))
        print("it signs one person in, once, within 15 minutes", file=sys.stderr)

    _merchant_command(link)


async def _release_due(settings: Settings) -> int:
    from referral.lib.ids import PublicIds
    from referral.rewards.service import release_due

    pool = await create_pool(
        settings.database_url, pooling=settings.database_pooling, min_size=1, max_size=2
    )
    try:
        return await release_due(pool, ids=PublicIds(settings.hashids_salt))
    finally:
        await pool.close()


def cmd_rewards_release_due(args: argparse.Namespace) -> None:
    """For cron: approve every reward whose hold has passed (the app also does this)."""
    with _database() as (settings, embedded):
        print(f"released {asyncio.run(_release_due(settings))} reward(s)")


async def _send_webhooks(settings: Settings, interval: float) -> None:
    import signal

    import msgspec

    from referral.webhooks.delivery import Deliverer

    settings = msgspec.structs.replace(settings, webhook_interval_seconds=interval)
    pool = await create_pool(
        settings.database_url, pooling=settings.database_pooling, min_size=1, max_size=4
    )
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        async with Deliverer(pool, settings) as deliverer:
            await deliverer.run()
    except asyncio.CancelledError:
        pass  # SIGTERM: what is in flight stays leased and is sent again after its lease
    finally:
        await pool.close()


def cmd_webhooks_send(args: argparse.Namespace) -> None:
    """The webhook sender in a process of its own, beside web workers started with
    WEBHOOK_INTERVAL_SECONDS=0: deliveries then never wait behind checkout requests for the
    CPU. Any number of these (and of web workers with a sender) share the work."""
    with _database() as (settings, _embedded):
        interval = args.interval or settings.webhook_interval_seconds or 0.1
        print(f"sending webhooks (looking every {interval:g} s when idle)", file=sys.stderr)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_send_webhooks(settings, interval))


def cmd_analytics_rebuild(args: argparse.Namespace) -> None:
    """Exit 1 when a kept rollup differs from the recomputation (and --apply was not given)."""
    from referral.analytics import cli as analytics
    from referral.lib.errors import AppError

    with _database() as (settings, _):
        try:
            agreed = asyncio.run(
                analytics.rebuild(settings, args.merchant, args.key, apply=args.apply)
            )
        except AppError as exc:
            raise CliError(exc.detail) from None
    if not agreed:
        sys.exit(1)


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
                    payouts.create(
                        settings, args.merchant, args.key, args.currency, args.kind, cutoff
                    )
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


def cmd_customers(args: argparse.Namespace) -> None:
    from referral.customers import cli as customers
    from referral.lib.errors import AppError

    with _database() as (settings, _):
        try:
            if args.action == "export":
                run = customers.export(
                    settings, args.merchant, args.key, args.customer_id, args.output
                )
            elif args.action == "erase":
                run = customers.erase(settings, args.merchant, args.key, args.customer_id)
            else:
                run = customers.retention(settings)
            asyncio.run(run)
        except AppError as exc:
            raise CliError(f"{exc.detail} ({exc.code})") from None


def cmd_import(args: argparse.Namespace) -> None:
    from referral.imports import cli as imports
    from referral.lib.errors import AppError

    with _database() as (settings, _):
        try:
            code = asyncio.run(
                imports.run(
                    settings,
                    args.merchant,
                    args.key,
                    args.kind,
                    args.file,
                    args.format,
                    args.program,
                    args.errors,
                )
            )
        except AppError as exc:
            raise CliError(f"{exc.detail} ({exc.code})") from None
        except OSError as exc:
            raise CliError(f"cannot read {args.file}: {exc.strerror}") from None
    if code:
        sys.exit(code)


def cmd_ledger(args: argparse.Namespace) -> None:
    from pathlib import Path

    from referral.lib.errors import AppError
    from referral.rewards import cli as ledger

    with _database() as (settings, _):
        try:
            if args.action == "balances":
                asyncio.run(
                    ledger.balances(
                        settings, args.merchant, args.key, args.as_of, args.program, args.csv
                    )
                )
            else:
                asyncio.run(
                    ledger.entries(
                        settings,
                        args.merchant,
                        args.key,
                        args.from_,
                        args.until,
                        args.program,
                        Path(args.output),
                        args.bom,
                    )
                )
        except AppError as exc:
            raise CliError(f"{exc.detail} ({exc.code})") from None


def cmd_dev_reset(args: argparse.Namespace) -> None:
    if os.environ.get("DATABASE_URL"):
        raise CliError("dev reset only wipes the embedded database; DATABASE_URL is set")
    data_dir = devstate.home() / "pgdata"
    try:
        EmbeddedPostgres(data_dir).remove()
    except ServerInUse as exc:
        raise CliError(
            f"the embedded database is in use by process {', '.join(map(str, exc.pids))} "
            "(`make run` or another `referral` command): stop it first"
        ) from None
    print(
        f"removed {data_dir}; the next `make run` starts from an empty database "
        "(secrets and demo keys are kept)"
    )


def _merchant_option(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """`--merchant mer_…` or `--key sk_…`: a command that needs a merchant takes either."""
    which = parser.add_mutually_exclusive_group(required=required)
    which.add_argument("--merchant", help="merchant id (mer_…): see `referral merchants list`")
    which.add_argument("--key", help="an API key of the merchant (sk_… or pk_…)")


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
    merchants.add_parser(
        "list", help="every merchant: id (mer_…), mode, time zone, name"
    ).set_defaults(func=cmd_merchants)
    show = merchants.add_parser("show", help="a merchant's settings")
    _merchant_option(show)
    show.set_defaults(func=cmd_merchants)
    update = merchants.add_parser("update", help="change a merchant's settings")
    _merchant_option(update)
    update.add_argument("--time-zone", help="IANA time zone name, e.g. Europe/Stockholm")
    update.add_argument(
        "--payout-minimum",
        action="append",
        default=[],
        metavar="CURRENCY=AMOUNT",
        help="payout minimum in minor units (EUR=5000 is 50.00 EUR; EUR=none removes it); "
        "repeat for more currencies",
    )
    update.set_defaults(func=cmd_merchants)

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(
        dest="action", required=True
    )
    key = keys.add_parser("create", help="create an API key and print it once")
    _merchant_option(key)
    key.add_argument("--kind", choices=["secret", "publishable"], default="secret")
    key.add_argument("--label", default="")
    key.add_argument(
        "--scope",
        action="append",
        choices=["checkout", "finance", "read", "admin"],
        help="restrict a secret key to this scope (repeat for more); none: unrestricted",
    )
    key.set_defaults(func=cmd_keys)
    list_keys = keys.add_parser("list", help="a merchant's keys (never the keys themselves)")
    _merchant_option(list_keys)
    list_keys.set_defaults(func=cmd_keys)
    revoke = keys.add_parser(
        "revoke", help="revoke a key; running servers refuse it within 30 seconds"
    )
    revoke.add_argument("key_id", help="key id (key_…), from `referral keys list`")
    _merchant_option(revoke, required=False)
    revoke.set_defaults(func=cmd_keys)
    roll = keys.add_parser(
        "roll", help="replace a key with a new one (printed once); the old one works for --grace"
    )
    roll.add_argument("key_id", help="key id (key_…), from `referral keys list`")
    roll.add_argument(
        "--grace", default="24h", help="how long the old key keeps working: 0, 15m, 24h, 7d"
    )
    _merchant_option(roll, required=False)
    roll.set_defaults(func=cmd_keys)

    console_link = sub.add_parser(
        "console-link", help="print a one-time sign-in link to a merchant's console"
    )
    _merchant_option(console_link)
    console_link.set_defaults(func=cmd_console_link)

    rewards = sub.add_parser("rewards", help="reward operations").add_subparsers(
        dest="action", required=True
    )
    rewards.add_parser(
        "release-due", help="approve rewards whose hold has passed (cron)"
    ).set_defaults(func=cmd_rewards_release_due)

    webhooks = sub.add_parser("webhooks", help="webhook delivery").add_subparsers(
        dest="action", required=True
    )
    send = webhooks.add_parser(
        "send", help="run the webhook sender in this process until stopped (SIGTERM, Ctrl-C)"
    )
    send.add_argument(
        "--interval",
        type=float,
        default=0.0,
        help="seconds between looks when idle (default: WEBHOOK_INTERVAL_SECONDS, else 0.1)",
    )
    send.set_defaults(func=cmd_webhooks_send)

    analytics = sub.add_parser("analytics", help="the analytics rollups").add_subparsers(
        dest="action", required=True
    )
    rebuild = analytics.add_parser(
        "rebuild",
        help="recompute the rollups from the raw rows and check the kept ones agree",
    )
    _merchant_option(rebuild, required=False)
    rebuild.add_argument(
        "--apply", action="store_true", help="replace the kept rollups by the recomputed ones"
    )
    rebuild.set_defaults(func=cmd_analytics_rebuild)

    payouts = sub.add_parser("payouts", help="payout batches for finance").add_subparsers(
        dest="action", required=True
    )
    create_batch = payouts.add_parser("create", help="collect approved rewards into a batch")
    _merchant_option(create_batch)
    create_batch.add_argument("--currency", required=True)
    create_batch.add_argument("--kind", choices=["cash", "store_credit"], default="cash")
    create_batch.add_argument("--cutoff", help="ISO 8601 time: rewards approved up to then")
    create_batch.set_defaults(func=cmd_payouts)
    export_batch = payouts.add_parser("export", help="write a batch's CSV")
    export_batch.add_argument("batch", help="payout batch id (pay_…)")
    export_batch.add_argument("-o", "--output", required=True)
    export_batch.add_argument(
        "--format", choices=["standard", "paypal", "bank"], default="standard"
    )
    export_batch.add_argument("--part", type=int, default=1, help="PayPal part (5,000 rows each)")
    export_batch.add_argument("--rewards", action="store_true", help="the per-reward CSV")
    export_batch.add_argument("--bom", action="store_true", help="start with a UTF-8 BOM")
    export_batch.set_defaults(func=cmd_payouts)
    paid = payouts.add_parser("mark-paid", help="mark a batch paid (idempotent)")
    paid.add_argument("batch", help="payout batch id (pay_…)")
    paid.add_argument("--actor", default="cli")
    paid.set_defaults(func=cmd_payouts)

    ledger = sub.add_parser("ledger", help="the books, for the accountant").add_subparsers(
        dest="action", required=True
    )
    balances = ledger.add_parser(
        "balances", help="owed, paid, reversed and receivable per currency, as of a moment"
    )
    _merchant_option(balances)
    balances.add_argument("--as-of", help="RFC 3339 time with a zone (default: now)")
    balances.add_argument("--program", help="one program's rewards (prg_…)")
    balances.add_argument("--csv", action="store_true", help="as the API's CSV")
    balances.set_defaults(func=cmd_ledger)
    entries = ledger.add_parser("entries", help="write every ledger entry of a range (CSV)")
    _merchant_option(entries)
    entries.add_argument("--from", dest="from_", help="booked after this time (default: all)")
    entries.add_argument("--until", help="up to and including this time (default: now)")
    entries.add_argument("--program", help="one program's rewards (prg_…)")
    entries.add_argument("-o", "--output", required=True)
    entries.add_argument("--bom", action="store_true", help="start with a UTF-8 BOM")
    entries.set_defaults(func=cmd_ledger)

    customers = sub.add_parser(
        "customers", help="a customer's data rights, and retention"
    ).add_subparsers(dest="action", required=True)
    export_customer = customers.add_parser(
        "export", help="everything held about one customer, as one JSON document"
    )
    _merchant_option(export_customer)
    export_customer.add_argument("customer_id", help="the shop's id for the customer")
    export_customer.add_argument("-o", "--output", default="-", help="a file (default: stdout)")
    export_customer.set_defaults(func=cmd_customers)
    erase_customer = customers.add_parser(
        "erase", help="replace one customer's personal data with tombstones"
    )
    _merchant_option(erase_customer)
    erase_customer.add_argument("customer_id", help="the shop's id for the customer")
    erase_customer.set_defaults(func=cmd_customers)
    customers.add_parser(
        "retention", help="drop raw clicks and fraud signals past their age, now"
    ).set_defaults(func=cmd_customers)

    imports = sub.add_parser(
        "import",
        help="import advocates, customers or past orders from another service (CSV or JSON lines)",
    )
    imports.add_argument("kind", choices=["advocates", "customers", "orders"])
    imports.add_argument("file", help="the file (- for standard input)")
    imports.add_argument(
        "--format",
        choices=["csv", "jsonl"],
        help="default: jsonl for .jsonl/.ndjson/.json files, else csv",
    )
    imports.add_argument("--program", help="advocates only: the program (prg_…) they refer for")
    imports.add_argument("--errors", help="write the error report to this CSV file")
    _merchant_option(imports)
    imports.set_defaults(func=cmd_import)

    dev = sub.add_parser("dev", help="local development").add_subparsers(
        dest="action", required=True
    )
    dev.add_parser("reset", help="wipe the embedded database").set_defaults(func=cmd_dev_reset)
    dev.add_parser(
        "env", help='the demo\'s key, code and ids for the shell: eval "$(referral dev env)"'
    ).set_defaults(func=cmd_dev_env)
    return parser


def main(argv: list[str] | None = None) -> None:
    from referral.lib.logging import configure_logging

    args = build_parser().parse_args(argv)
    # Redacted like the server's; a command's logs go to stderr, its answer to stdout (a key
    # or `dev env` captured by the shell). serve logs to stdout, as its workers do.
    configure_logging(
        os.environ.get("LOG_FORMAT", "auto"),
        os.environ.get("LOG_LEVEL", "info"),
        stream=None if args.command == "serve" else sys.stderr,
    )
    try:
        args.func(args)
    except (CliError, SettingsError, MigrationError) as exc:
        print(f"referral: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
