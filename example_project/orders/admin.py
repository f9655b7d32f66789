"""The shop's rows in the admin, next to the executions that produced them."""

from django.contrib import admin

from .models import Charge, Invoice, Order, Product, SentEmail


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("id", "email", "amount", "status", "created_at")
    list_filter = ("status",)


@admin.register(Charge)
class ChargeAdmin(admin.ModelAdmin):
    list_display = ("reference", "order", "amount", "created_at")


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = ("number", "order", "amount", "created_at")


@admin.register(SentEmail)
class SentEmailAdmin(admin.ModelAdmin):
    list_display = ("subject", "to", "sent_at")


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("name", "base_price", "price", "updated_at")
