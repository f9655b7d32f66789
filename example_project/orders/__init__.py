"""A small shop: orders to charge, confirm and invoice, run as durable tasks."""
