"""LangChain: each LLM call of a chain is recorded as PromptStream records a run (the user's variant in the prompt's
live experiment), and the app tracks what the user did with the answer (pip install 'promptstream[langchain]').

Two ways, both below: build the chain's prompt from the assigned version (the experiment then decides what the model
is sent), or keep your own chain and let the handler assign per LLM call. The fake chat model stands in for yours
(ChatOpenAI, ChatAnthropic, ...); nothing else changes.

    PROMPTSTREAM_API_KEY=... GREETING_PROMPT_ID=... python langchain_app.py ada
"""

from __future__ import annotations

import os
import sys

from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from promptstream import PromptStreamClient
from promptstream.integrations.langchain import LLMCall, PromptStreamCallbackHandler

PROMPT_ID = os.environ["GREETING_PROMPT_ID"]
client = PromptStreamClient()  # PROMPTSTREAM_API_KEY and PROMPTSTREAM_BASE_URL from the environment
model = FakeListChatModel(responses=["Welcome aboard!", "Glad you are here."])  # your chat model here


def greet(user_id: str, name: str) -> tuple[str, LLMCall]:
    """The assigned version's template is the chain's prompt ({{name}} is LangChain's mustache syntax), and the
    handler records the chain's LLM calls against that one assignment."""
    assignment = client.assign(PROMPT_ID, external_user_id=user_id)
    prompt = ChatPromptTemplate.from_messages([("human", assignment.template or "")], template_format="mustache")
    handler = PromptStreamCallbackHandler(client, assignment=assignment)
    text = (prompt | model | StrOutputParser()).invoke({"name": name}, config={"callbacks": [handler]})
    call = handler.last_call
    assert call is not None
    return text, call


def answer(user_id: str, question: str) -> tuple[str, LLMCall]:
    """Your own chain (or agent): the handler assigns the user at each LLM call, as run_prompt would."""
    handler = PromptStreamCallbackHandler(client, PROMPT_ID, external_user_id=user_id)
    chain = ChatPromptTemplate.from_messages([("human", "{question}")]) | model | StrOutputParser()
    text = chain.invoke({"question": question}, config={"callbacks": [handler]})
    call = handler.last_call
    assert call is not None
    return text, call


def liked(call: LLMCall) -> None:
    """The user gave the answer a thumbs-up: it counts for the call's variant."""
    if call.run_id is not None and call.experiment_id is not None:  # None only when the server was unreachable
        client.track_feedback(call.run_id, call.experiment_id, thumbs_up=True)


if __name__ == "__main__":
    text, call = greet(sys.argv[1] if len(sys.argv) > 1 else "ada", "Ada")
    print(f"{call.variant_assigned}: {text}")
    liked(call)
    client.close()
