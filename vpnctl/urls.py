"""vpnctl's URLs: the app, the admin, login and logout, and the language switch."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from maintenance.views.health import healthz, healthz_worker

urlpatterns = [
    path("", include("maintenance.urls")),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("healthz/", healthz, name="healthz"),
    path("healthz/worker/", healthz_worker, name="healthz_worker"),
    # set_language: the header's language selector posts here.
    path("i18n/", include("django.conf.urls.i18n")),
]
