"""Ways into a task other than ``invoke()``: cron schedules, and (to come) events and model
triggers."""
