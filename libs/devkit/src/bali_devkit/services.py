"""The platform's services, in the order `bali up` starts them and `bali migrate` migrates them."""

SERVICES = ("activities", "consultation", "notifications", "reporting")
