from django.urls import path

from . import views, views_requests

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
    path(
        "tunnels/<int:tunnel_pk>/request/<str:kind>/",
        views_requests.request_new,
        name="request_new",
    ),
    path("requests/", views_requests.request_list, name="requests"),
    path("requests/waiting/", views_requests.my_approvals, name="my_approvals"),
    path("requests/mine/", views_requests.my_requests, name="my_requests"),
    path("requests/<int:pk>/", views_requests.request_detail, name="request"),
    path(
        "requests/<int:pk>/timeline/", views_requests.request_timeline, name="request_timeline"
    ),
    path("requests/<int:pk>/decide/", views_requests.request_decide, name="request_decide"),
    path("requests/<int:pk>/cancel/", views_requests.request_cancel, name="request_cancel"),
    path(
        "requests/<int:pk>/reschedule/",
        views_requests.request_reschedule,
        name="request_reschedule",
    ),
]
