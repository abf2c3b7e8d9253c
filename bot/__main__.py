"""``python -m bot``: run the bot with long polling, or a webhook when ``WEBHOOK_URL`` is set."""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import replace
from urllib.parse import urlsplit

from telegram import Update

from bot.app import build_application, setup_logging
from bot.config import SECRET_VARIABLES, ConfigError, load_config, load_worker_config
from composer.model_store import ModelLibrary


def main() -> int:
    if sys.argv[1:2] == ["worker"]:
        return worker_main()
    try:
        config = load_config()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name in SECRET_VARIABLES:  # read once; worker processes and their programs must not inherit them
        os.environ.pop(name, None)
    setup_logging(config)
    infos = ModelLibrary(config.models_dir).styles()
    styles = {info.name: info.description for info in infos}
    metres = {info.name: tuple(f"{n}/{d}" for n, d in info.metres) for info in infos}
    if not styles:
        print(f"error: no trained models in {config.models_dir} (set MODELS_DIR, or train one: "
              "python -m composer train --style classical --corpus)", file=sys.stderr)
        return 2
    if config.default_style and config.default_style not in styles:
        print(f"error: DEFAULT_STYLE {config.default_style!r} has no model; styles: {', '.join(styles)}",
              file=sys.stderr)
        return 2
    if not config.default_style:
        config = replace(config, default_style="classical" if "classical" in styles else next(iter(styles)))
    if config.webhook_url and importlib.util.find_spec("tornado") is None:
        print('error: WEBHOOK_URL needs python-telegram-bot[webhooks] (make run installs it): '
              '.venv/bin/pip install "python-telegram-bot[webhooks]"',
              file=sys.stderr)
        return 2
    app = build_application(config, styles, metres)
    if config.webhook_url:
        app.run_webhook(
            listen=config.webhook_listen, port=config.webhook_port,
            url_path=urlsplit(config.webhook_url).path.lstrip("/"), webhook_url=config.webhook_url,
            secret_token=config.webhook_secret, allowed_updates=Update.ALL_TYPES,
        )
    else:
        app.run_polling(allowed_updates=Update.ALL_TYPES)
    return 0


def worker_main() -> int:
    """``python -m bot worker``: make pieces from the Redis queue (scale mode); no Telegram token needed."""
    try:
        config = load_worker_config()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name in SECRET_VARIABLES:
        os.environ.pop(name, None)
    setup_logging(config)
    if not ModelLibrary(config.models_dir).styles():
        print(f"error: no trained models in {config.models_dir} (set MODELS_DIR)", file=sys.stderr)
        return 2
    from bot.queue import run_worker

    return run_worker(config.redis_url, config.models_dir, config.soundfont, config.workers,
                      config.job_timeout, config.max_piece_seconds)


if __name__ == "__main__":
    sys.exit(main())
