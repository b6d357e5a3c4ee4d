"""What a run costs: prices in US dollars per million input and output tokens, configured per model (as the provider
names it) or per prompt (by id or name; a prompt's price wins over its model's). ``promptstream serve --price`` and
``PROMPTSTREAM_SERVER_PRICES`` take the same specs; docs/experiments.md, "Latency, tokens and cost", documents them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["ENV_PRICES", "Price", "Prices"]

ENV_PRICES = "PROMPTSTREAM_SERVER_PRICES"
MAX_PRICE = 1e6  # dollars per million tokens: anything above is a typo, not a model
_SPEC = re.compile(r"^(?P<key>[^=\s]+)=(?P<input>[^/\s]+)/(?P<output>[^/\s]+)$")


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million input tokens and per million output tokens.

    Example:
        ```python
        price = Price(input_per_million=2.5, output_per_million=10.0)
        ```
    """

    input_per_million: float
    output_per_million: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """What that many tokens cost, in dollars.

        Example:
            ```python
            assert Price(2.0, 8.0).cost(1_000_000, 500_000) == 6.0
            ```
        """
        return (input_tokens * self.input_per_million + output_tokens * self.output_per_million) / 1e6


@dataclass(frozen=True)
class Prices:
    """The configured prices. ``Prices.parse(["gpt-4o=2.5/10", "prompt:welcome=1/2"])``: a model's price, then a
    prompt's (``prompt:`` and its id or name).

    Example:
        ```python
        prices = Prices.parse(["template=1/2"])
        assert prices.cost("template", ("p1", "welcome"), 1000, 500) == 0.002
        ```
    """

    models: dict[str, Price] = field(default_factory=dict)
    prompts: dict[str, Price] = field(default_factory=dict)

    @classmethod
    def parse(cls, specs: Iterable[str]) -> Prices:
        """Prices from ``KEY=INPUT/OUTPUT`` specs (dollars per million tokens); ValueError naming a bad one.

        Example:
            ```python
            prices = Prices.parse(["gpt-4o=2.5/10", "prompt:welcome=1/2"])
            ```
        """
        models: dict[str, Price] = {}
        prompts: dict[str, Price] = {}
        for spec in specs:
            match = _SPEC.match(spec.strip())
            if match is None:
                raise ValueError(f"price {spec!r} must look like MODEL=INPUT/OUTPUT or prompt:NAME=INPUT/OUTPUT")
            amounts = []
            for part in (match.group("input"), match.group("output")):
                try:
                    amount = float(part)
                except ValueError:
                    amount = math.nan
                if not 0.0 <= amount <= MAX_PRICE:
                    raise ValueError(f"price {spec!r}: {part!r} is not a number of dollars from 0 to {MAX_PRICE:.0e}")
                amounts.append(amount)
            key, price = match.group("key"), Price(amounts[0], amounts[1])
            if key.startswith("prompt:"):
                if not key[len("prompt:") :]:
                    raise ValueError(f"price {spec!r} names no prompt")
                prompts[key[len("prompt:") :]] = price
            else:
                models[key] = price
        return cls(models, prompts)

    @classmethod
    def from_text(cls, text: str | None) -> Prices:
        """Prices from a comma- or space-separated list of specs (the environment variable's form).

        Example:
            ```python
            prices = Prices.from_text("gpt-4o=2.5/10, template=0/0")
            ```
        """
        return cls.parse(part for part in re.split(r"[,\s]+", text or "") if part)

    def price(self, model: str | None, prompt: Iterable[str]) -> Price | None:
        """The price of a run: its prompt's (by any of ``prompt``, its id and name), else its model's, else None.

        Example:
            ```python
            assert Prices.parse(["m=1/2"]).price("m", ("prompt-id", "welcome")) == Price(1.0, 2.0)
            ```
        """
        for key in prompt:
            if key in self.prompts:
                return self.prompts[key]
        return self.models.get(model) if model is not None else None

    def cost(
        self, model: str | None, prompt: Iterable[str], input_tokens: int | None, output_tokens: int | None
    ) -> float | None:
        """The run's cost in dollars; None without a price or without both token counts.

        Example:
            ```python
            assert Prices.parse(["m=1/2"]).cost("m", (), None, 10) is None
            ```
        """
        price = self.price(model, prompt)
        if price is None or input_tokens is None or output_tokens is None:
            return None
        return price.cost(input_tokens, output_tokens)

    def __bool__(self) -> bool:
        return bool(self.models or self.prompts)
