from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .apps import promptstream


@csrf_exempt
@require_POST
def greet(request: HttpRequest, user_id: str) -> JsonResponse:
    run = promptstream().run_prompt(settings.GREETING_PROMPT_ID, {"name": user_id}, external_user_id=user_id)
    return JsonResponse({"run_id": run.run_id, "experiment_id": run.experiment_id, "text": run.output})


@csrf_exempt
@require_POST
def rated(request: HttpRequest, run_id: str) -> JsonResponse:
    event_id = promptstream().track_rating(
        run_id, request.GET["experiment_id"], rating=float(request.GET.get("stars", "5"))
    )
    return JsonResponse({"event_id": event_id})
