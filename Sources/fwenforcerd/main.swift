import Enforcer
print("fwenforcerd")
