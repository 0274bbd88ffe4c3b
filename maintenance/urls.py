from django.urls import path

from . import views, views_audit, views_batches, views_calendar, views_dashboard, views_requests

app_name = "maintenance"

urlpatterns = [
    # Inventory
    path("", views.home, name="home"),
    path("connections/", views.connection_list, name="connections"),
    path("connections/<int:pk>/", views.connection_detail, name="connection"),
    path(
        "connections/<int:pk>/history/",
        views_dashboard.connection_history,
        name="connection_history",
    ),
    path("tunnels/<int:pk>/history/", views_dashboard.tunnel_history, name="tunnel_history"),
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
    path("requests/<int:pk>/timeline/", views_requests.request_timeline, name="request_timeline"),
    path("requests/<int:pk>/decide/", views_requests.request_decide, name="request_decide"),
    path("requests/<int:pk>/cancel/", views_requests.request_cancel, name="request_cancel"),
    path(
        "requests/<int:pk>/reschedule/",
        views_requests.request_reschedule,
        name="request_reschedule",
    ),
    # Batches: lifecycle control for many tunnels at once
    path("batches/", views_batches.batch_list, name="batches"),
    path("batches/new/", views_batches.batch_new, name="batch_new"),
    path("batches/<int:pk>/", views_batches.batch_detail, name="batch"),
    path("batches/<int:pk>/decide/", views_batches.batch_decide, name="batch_decide"),
    # Audit log
    path("audit/", views_audit.audit_log, name="audit"),
    path("audit/export.<str:fmt>", views_audit.audit_export, name="audit_export"),
    # Calendar, timeline
    path("calendar/", views_calendar.calendar_page, name="calendar"),
    path("calendar/new/", views_calendar.calendar_create, name="calendar_create"),
    path("calendar/revoke/", views_calendar.calendar_revoke, name="calendar_revoke"),
    path("calendar/<slug:token>.ics", views_calendar.calendar_feed, name="calendar_feed"),
    path("timeline/", views_calendar.timeline, name="timeline"),
]
