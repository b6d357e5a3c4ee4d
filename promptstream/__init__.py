"""PromptStream's Python SDK: run versioned prompts and A/B experiments, and track what users do with the output.

Example:
    ```python
    from promptstream import PromptStreamClient

    client = PromptStreamClient(api_key="ps_...")
    run = client.run_prompt("PROMPT_ID", {"text": "Hi"}, external_user_id="user_123")
    client.track_conversion(run.run_id, run.experiment_id)
    ```
"""

from ._agent import EventSink
from ._assign import Assignment
from ._async_client import AsyncPromptStreamClient
from ._async_resources import AsyncExperiments, AsyncPrompts
from ._client import PromptStreamClient
from ._config import AgentConfig
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ArgumentTypeError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    EventRejectedError,
    InvalidArgumentError,
    InvalidResponseError,
    MissingDependencyError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PromptNotFoundError,
    PromptStreamError,
    RateLimitError,
    ServerError,
)
from ._management_models import Experiment, Prompt, PromptVersion, Variant
from ._models import (
    DeliveryStats,
    Event,
    ResponseInfo,
    RunResponse,
)
from ._planning import SampleSizePlan, plan_sample_size
from ._privacy import hash_user_id
from ._resources import Experiments, Prompts
from ._results_export import timeseries_to_dict, timeseries_to_pandas, timeseries_to_polars
from ._results_models import (
    DataQuality,
    Decision,
    ExperimentResults,
    GuardrailViolation,
    LatencyResult,
    LiftEstimate,
    MeanResult,
    OutcomeRates,
    QuantileResult,
    RateResult,
    RatioResult,
    SampleRatio,
    TimeseriesRow,
    UsageResult,
    VariantResult,
)
from ._version import __version__

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AgentConfig",
    "ArgumentTypeError",
    "Assignment",
    "AsyncExperiments",
    "AsyncPromptStreamClient",
    "AsyncPrompts",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "DataQuality",
    "Decision",
    "DeliveryStats",
    "Event",
    "EventRejectedError",
    "EventSink",
    "Experiment",
    "ExperimentResults",
    "Experiments",
    "GuardrailViolation",
    "InvalidArgumentError",
    "InvalidResponseError",
    "LatencyResult",
    "LiftEstimate",
    "MeanResult",
    "MissingDependencyError",
    "NotFoundError",
    "OutcomeRates",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "Prompt",
    "PromptNotFoundError",
    "PromptStreamClient",
    "PromptStreamError",
    "PromptVersion",
    "Prompts",
    "QuantileResult",
    "RateLimitError",
    "RateResult",
    "RatioResult",
    "ResponseInfo",
    "RunResponse",
    "SampleRatio",
    "SampleSizePlan",
    "ServerError",
    "TimeseriesRow",
    "UsageResult",
    "Variant",
    "VariantResult",
    "__version__",
    "hash_user_id",
    "plan_sample_size",
    "timeseries_to_dict",
    "timeseries_to_pandas",
    "timeseries_to_polars",
]
