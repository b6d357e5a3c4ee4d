from django.urls import path

from . import views

urlpatterns = [
    path("greet/<str:user_id>", views.greet),
    path("runs/<str:run_id>/rated", views.rated),
]
