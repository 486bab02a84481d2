"""placeholder"""
def instrument() -> bool:
    return False
def uninstrument() -> None:
    return None
