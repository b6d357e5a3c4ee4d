"""Integrations with the tools LLM teams already run, each behind its own extra and imported only by name:
``promptstream.integrations.langchain`` (extra ``langchain``). ``import promptstream`` never imports them."""
