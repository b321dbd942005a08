print("coupon-bench: not yet")
