"""The Celery app that `alphaplus-mlops worker` runs: dagster_celery's step task on the
project's broker, backend and queues (celery -A alphaplus_mlops.distributed.celery_app)."""

from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from alphaplus_mlops.distributed.celery_config import CONFIG_SOURCE, task_queues
from alphaplus_mlops.settings import Settings

_settings = Settings.from_env()
app = make_app(
    CeleryExecutor.for_cli(
        broker=_settings.require_celery_broker(),
        backend=_settings.celery_backend_url,
        config_source=CONFIG_SOURCE,
    ).app_args()
)
app.conf.task_queues = task_queues()
execute_plan = create_task(app)
