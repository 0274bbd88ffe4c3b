"""The product's URLs, one block per view module."""

from django.urls import path

from .views import (
    audit,
    batches,
    calendar,
    changes,
    chat,
    dashboard,
    fleet,
    history,
    inventory,
    refresh,
    tokens,
)

app_name = "maintenance"

urlpatterns = [
    # Inventory
    path("", dashboard.home, name="home"),
    path("connections/", inventory.connection_list, name="connections"),
    path("connections/<int:pk>/", inventory.connection_detail, name="connection"),
    path(
        "connections/<int:pk>/history/",
        history.connection_history,
        name="connection_history",
    ),
    path("tunnels/<int:pk>/history/", history.tunnel_history, name="tunnel_history"),
    path("sync/", inventory.sync_runs, name="sync_runs"),
    path("sync/now/", inventory.sync_now, name="sync_now"),
    path("sync/<int:pk>/", inventory.sync_run_detail, name="sync_run"),
    path("preferences/", inventory.preferences, name="preferences"),
    path("preferences/tokens/new/", tokens.api_token_create, name="api_token_create"),
    path("preferences/tokens/<int:pk>/revoke/", tokens.api_token_revoke, name="api_token_revoke"),
    # Change workflow: add below.
    path(
        "tunnels/<int:tunnel_pk>/request/<str:kind>/",
        changes.request_new,
        name="request_new",
    ),
    path("requests/", changes.request_list, name="requests"),
    path("requests/waiting/", changes.my_approvals, name="my_approvals"),
    path("requests/mine/", changes.my_requests, name="my_requests"),
    path("requests/<int:pk>/", changes.request_detail, name="request"),
    path("requests/<int:pk>/timeline/", changes.request_timeline, name="request_timeline"),
    path("requests/<int:pk>/decide/", changes.request_decide, name="request_decide"),
    path("requests/<int:pk>/cancel/", changes.request_cancel, name="request_cancel"),
    path("requests/<int:pk>/refresh/", refresh.request_refresh, name="request_refresh"),
    path(
        "requests/<int:pk>/reschedule/",
        changes.request_reschedule,
        name="request_reschedule",
    ),
    # Batches: lifecycle control for many tunnels at once
    path("batches/", batches.batch_list, name="batches"),
    path("batches/new/", batches.batch_new, name="batch_new"),
    path("batches/<int:pk>/", batches.batch_detail, name="batch"),
    path("batches/<int:pk>/decide/", batches.batch_decide, name="batch_decide"),
    # Audit log
    path("audit/", audit.audit_log, name="audit"),
    path("audit/export.<str:fmt>", audit.audit_export, name="audit_export"),
    # Calendar, timeline
    path("calendar/", calendar.calendar_page, name="calendar"),
    path("calendar/new/", calendar.calendar_create, name="calendar_create"),
    path("calendar/revoke/", calendar.calendar_revoke, name="calendar_revoke"),
    path("calendar/<slug:token>.ics", calendar.calendar_feed, name="calendar_feed"),
    path("timeline/", calendar.timeline, name="timeline"),
    # Chat channels (admins)
    path("chat/", chat.channel_list, name="chat_channels"),
    path("chat/new/", chat.channel_new, name="chat_channel_new"),
    path("chat/<int:pk>/", chat.channel_edit, name="chat_channel"),
    path("chat/<int:pk>/delete/", chat.channel_delete, name="chat_channel_delete"),
    path("chat/<int:pk>/test/", chat.channel_test, name="chat_channel_test"),
    path("chat/deliveries/", chat.delivery_log, name="chat_deliveries"),
    # Fleet automation: the plan, maintenance policies, AWS Health events
    path("plan/", fleet.plan, name="plan"),
    path("policies/", fleet.policy_list, name="policies"),
    path("policies/<int:pk>/", fleet.policy_detail, name="policy"),
    path("policies/<int:pk>/approve/", fleet.policy_approve, name="policy_approve"),
    path("policies/<int:pk>/suspend/", fleet.policy_suspend, name="policy_suspend"),
    path("health-events/", fleet.health_events, name="health_events"),
]
