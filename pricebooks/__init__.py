"""Example pricebooks users copy; shipped inside the package so `rating demo` works anywhere."""
