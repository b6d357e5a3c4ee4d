"""Django: a minimal project whose app creates one PromptStreamClient per process in ``AppConfig.ready()``.

    PROMPTSTREAM_API_KEY=... GREETING_PROMPT_ID=... DJANGO_SETTINGS_MODULE=django_greetings.settings \
        gunicorn django_greetings.wsgi

``settings.py`` (the client's options), ``apps.py`` (creating it), ``views.py`` (using it), ``urls.py``.
"""
