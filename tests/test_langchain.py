"""The LangChain callback handler (issue 18 §3) inside real langchain-core chains with langchain-core's fake chat
models (no network): each LLM call is assigned and recorded on the real reference server like a run_prompt run, and
outcomes tracked against it count in the experiment's results."""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptstream import AsyncPromptStreamClient, InvalidArgumentError, PromptStreamClient

from .helpers import API_KEY, REPO_ROOT, client_env, free_port

pytest.importorskip("langchain_core")

from langchain_core.language_models.fake import FakeListLLM
from langchain_core.language_models.fake_chat_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate, PromptTemplate
from langchain_core.runnables import RunnableConfig, RunnableLambda, RunnableParallel

from promptstream.integrations.langchain import (
    AsyncPromptStreamCallbackHandler,
    PromptStreamCallbackHandler,
)

EXAMPLES = REPO_ROOT / "docs" / "examples"


def _experiment(server: Any, client: PromptStreamClient) -> str:
    prompt = server.create_prompt(template="Hello {{name}}!")
    server.store.add_version("default", prompt["prompt_id"], "Hi {{name}}, welcome back")
    client.experiments.create(prompt["prompt_id"], [(1, 1.0), (2, 1.0)])
    return str(prompt["prompt_id"])


def _assigned_runs(server: Any) -> int:
    db = server.database()
    try:
        return int(db.execute("SELECT COUNT(*) FROM runs r JOIN assignments a ON a.run_id = r.id").fetchone()[0])
    finally:
        db.close()


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(users=st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=4, unique=True))
def test_each_llm_call_of_a_chain_is_assigned_as_run_prompt_would_assign_it(
    server: Any, client: PromptStreamClient, users: list[str]
) -> None:
    prompt_id = _experiment(server, client)
    before = _assigned_runs(server)
    chain = (
        ChatPromptTemplate.from_messages([("system", "Be brief."), ("human", "{question}")])
        | FakeListChatModel(responses=["an answer"])
        | StrOutputParser()
    )
    for user in users:
        handler = PromptStreamCallbackHandler(client, prompt_id, external_user_id=user)
        assert chain.invoke({"question": "hi?"}, config={"callbacks": [handler]}) == "an answer"
        call = handler.last_call
        assert call is not None and call.error is None and call.assignment is not None
        run = client.run_prompt(prompt_id, {"name": "x"}, external_user_id=user)
        assert (call.variant_assigned, call.experiment_id) == (run.variant_assigned, run.experiment_id)
        assert call.output == "an answer" and call.prompts == ["system: Be brief.\nhuman: hi?"]
        assert call.prompt_id == prompt_id and call.external_user_id == user
    assert _assigned_runs(server) == before + len(users)  # one run without output per LLM call, on the server


def test_outcomes_tracked_on_the_calls_count_in_the_results(server: Any, client: PromptStreamClient) -> None:
    prompt_id = _experiment(server, client)
    model = FakeListChatModel(responses=["a", "b"])
    two_calls = RunnableParallel(first=model, second=model)  # two LLM calls in one chain
    calls = []
    for user in range(12):
        handler = PromptStreamCallbackHandler(client, prompt_id, external_user_id=f"user-{user}")
        two_calls.invoke("hi", config={"callbacks": [handler]})
        assert len(handler.calls) == 2 and len({c.run_id for c in handler.calls}) == 2
        assert handler.calls[0].variant_assigned == handler.calls[1].variant_assigned  # sticky for the user
        calls.extend(handler.calls)
    liked = calls[::2]
    for call in liked:
        assert call.run_id is not None and call.experiment_id is not None
        client.track_feedback(call.run_id, call.experiment_id, thumbs_up=True)
    assert client.flush(timeout=10) and client.stats().rejected == 0
    results = client.get_experiment_results(str(calls[0].experiment_id))
    for variant in results.variants:
        mine = [c for c in calls if c.variant_assigned == variant.variant]
        assert variant.runs == len(mine)
        assert variant.thumbs_up.successes == sum(c in liked for c in mine)


def test_per_call_metadata_picks_the_prompt_and_user(server: Any, client: PromptStreamClient) -> None:
    first = _experiment(server, client)
    second = server.create_prompt(template="Other {{x}}", name="other")["prompt_id"]
    handler = PromptStreamCallbackHandler(client, first)  # one handler for the whole app
    model = FakeListChatModel(responses=["ok"])
    config: RunnableConfig = {
        "callbacks": [handler],
        "metadata": {"promptstream_prompt_id": second, "promptstream_user_id": "grace"},
    }
    model.invoke("hi", config=config)
    call = handler.last_call
    assert call is not None and call.assignment is not None
    assert (call.prompt_id, call.external_user_id, call.assignment.prompt_id) == (second, "grace", second)
    assert call.assignment.template == "Other {{x}}"


def test_a_tool_calling_agent_loop_records_every_model_turn(server: Any, client: PromptStreamClient) -> None:
    """An agent: the model asks for a tool, gets its answer, and replies; both model turns are recorded, with the
    token usage the model reported."""
    prompt_id = _experiment(server, client)
    turns = iter(
        [
            AIMessage(
                content="",
                tool_calls=[{"name": "lookup", "args": {"q": "plan"}, "id": "call-1"}],
                usage_metadata={"input_tokens": 5, "output_tokens": 3, "total_tokens": 8},
            ),
            AIMessage(
                content="You are on Pro.", usage_metadata={"input_tokens": 9, "output_tokens": 4, "total_tokens": 13}
            ),
        ]
    )
    model = GenericFakeChatModel(messages=turns)

    def agent(question: str, config: RunnableConfig) -> str:
        messages: list[Any] = [HumanMessage(question)]
        while True:
            reply = model.invoke(messages, config=config)
            messages.append(reply)
            if not reply.tool_calls:
                return str(reply.content)
            for tool_call in reply.tool_calls:
                messages.append(ToolMessage(content="Pro", tool_call_id=tool_call["id"]))

    handler = PromptStreamCallbackHandler(client, prompt_id, external_user_id="ada")
    assert RunnableLambda(agent).invoke("which plan?", config={"callbacks": [handler]}) == "You are on Pro."
    assert [c.token_usage for c in handler.calls] == [
        {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8},
        {"input_tokens": 9, "output_tokens": 4, "total_tokens": 13},
    ]
    assert len({c.run_id for c in handler.calls}) == 2 and handler.calls[1].output == "You are on Pro."


def test_a_plain_llm_in_a_prompt_template_chain(server: Any, client: PromptStreamClient) -> None:
    prompt_id = _experiment(server, client)
    handler = PromptStreamCallbackHandler(client, prompt_id, external_user_id="linus")
    chain = PromptTemplate.from_template("Q: {q}") | FakeListLLM(responses=["A"])
    assert chain.invoke({"q": "x"}, config={"callbacks": [handler]}) == "A"
    call = handler.last_call
    assert call is not None and call.prompts == ["Q: x"] and call.output == "A" and call.run_id is not None


def test_an_assignment_made_first_drives_the_chain_and_owns_its_calls(server: Any, client: PromptStreamClient) -> None:
    """The assigned version's template is the chain's prompt (mustache = the protocol's {{name}}), and the handler
    adds no second run."""
    prompt_id = _experiment(server, client)
    for user in ("ada", "grace", "linus", "barbara"):
        assignment = client.assign(prompt_id, external_user_id=user)
        prompt = ChatPromptTemplate.from_messages([("human", assignment.template or "")], template_format="mustache")
        handler = PromptStreamCallbackHandler(client, assignment=assignment)
        runs_before = server.store.count("runs")
        (prompt | FakeListChatModel(responses=["ok"])).invoke({"name": "Ada"}, config={"callbacks": [handler]})
        call = handler.last_call
        assert call is not None and call.assignment == assignment and call.external_user_id == user
        assert call.prompts == [f"human: {assignment.render({'name': 'Ada'})}"]  # what the model was sent
        assert server.store.count("runs") == runs_before


def test_the_chain_goes_on_when_the_server_is_down(spool_dir: Path) -> None:
    client = PromptStreamClient(API_KEY, base_url=f"http://127.0.0.1:{free_port()}", spool_dir=spool_dir, max_retries=0)
    try:
        handler = PromptStreamCallbackHandler(client, "p", external_user_id="ada")
        assert FakeListChatModel(responses=["still works"]).invoke("hi", config={"callbacks": [handler]}).content
        call = handler.last_call
        assert call is not None and call.assignment is None and call.run_id is None
        assert call.error is not None and "APIConnectionError" in call.error
        assert call.output == "still works"
    finally:
        client.close(timeout=0.1)


def test_async_chains_with_the_async_handler(server: Any, spool_dir: Path) -> None:
    prompt = server.create_prompt(template="Hello {{name}}!")

    async def main() -> list[Any]:
        async with AsyncPromptStreamClient(API_KEY, base_url=server.url, spool_dir=spool_dir) as client:
            handler = AsyncPromptStreamCallbackHandler(client, prompt["prompt_id"], external_user_id="ada")
            chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | FakeListChatModel(responses=["r"])
            await asyncio.gather(*(chain.ainvoke({"q": str(n)}, config={"callbacks": [handler]}) for n in range(5)))
            for call in handler.calls:
                client.track_conversion(call.run_id, call.experiment_id)  # type: ignore[arg-type]
            assert await client.flush(timeout=10)
            return handler.calls

    calls = asyncio.run(main())
    assert len(calls) == 5 and all(c.variant_assigned == "v1" and c.output == "r" for c in calls)
    assert server.store.count("events") == 5


def test_handler_arguments_are_checked(client: PromptStreamClient) -> None:
    with pytest.raises(InvalidArgumentError):
        PromptStreamCallbackHandler(client)
    with pytest.raises(InvalidArgumentError):
        PromptStreamCallbackHandler(client, assignment="not an assignment")  # type: ignore[arg-type]


def test_without_langchain_core_the_import_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['langchain_core'] = None\n"
        "from promptstream import MissingDependencyError\n"
        "try:\n"
        "    import promptstream.integrations.langchain\n"
        "except MissingDependencyError as exc:\n"
        "    print(exc.extra, 'promptstream[langchain]' in str(exc))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert done.stdout.strip() == "langchain True", done.stderr


# -- the recipes in docs/recipes.md ---------------------------------------------------------------------------------


@pytest.fixture
def recipe_env(
    server: Any, client: PromptStreamClient, spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    prompt_id = _experiment(server, client)
    for name, value in client_env(server.url, spool_dir / "recipe").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GREETING_PROMPT_ID", prompt_id)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    yield prompt_id
    for module in ("langchain_app", "direct_model"):
        loaded = sys.modules.pop(module, None)
        if loaded is not None:
            loaded.client.close(timeout=2)


def test_langchain_recipe(server: Any, client: PromptStreamClient, recipe_env: str) -> None:
    recipe = importlib.import_module("langchain_app")
    text, greeted = recipe.greet("ada", "Ada")
    assert text == "Welcome aboard!" and greeted.assignment.render({"name": "Ada"}) in greeted.prompts[0]
    answer, asked = recipe.answer("grace", "What is new?")
    assert answer == "Glad you are here." and asked.run_id != greeted.run_id
    for call in (greeted, asked):
        recipe.liked(call)
        assert (
            call.variant_assigned
            == client.run_prompt(recipe_env, {"name": "x"}, call.external_user_id).variant_assigned
        )
    assert recipe.client.flush(timeout=10)
    for call in (greeted, asked):
        assert server.store.count("events", "WHERE prompt_run_id = ? AND type = 'feedback'", [call.run_id]) == 1


def test_direct_model_recipe(server: Any, client: PromptStreamClient, recipe_env: str) -> None:
    recipe = importlib.import_module("direct_model")
    assignment, reply = recipe.greet("ada", "Ada")
    run = client.run_prompt(recipe_env, {"name": "Ada"}, "ada")
    assert reply == f"[model] {run.output}" and assignment.variant_assigned == run.variant_assigned
    recipe.converted(assignment)
    assert recipe.client.flush(timeout=10)
    results = client.get_experiment_results(assignment.experiment_id)
    assert results.variant(assignment.variant_assigned).conversion.per_run.successes == 1
