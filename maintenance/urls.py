from django.urls import path

from . import views

app_name = "maintenance"

urlpatterns = [
    # Inventory
    path("", views.home, name="home"),
    path("connections/", views.connection_list, name="connections"),
    path("connections/<int:pk>/", views.connection_detail, name="connection"),
    path("sync/", views.sync_runs, name="sync_runs"),
    path("sync/now/", views.sync_now, name="sync_now"),
    path("preferences/", views.preferences, name="preferences"),
    # Change workflow: add below.
]
