"""Named expectations for the end-to-end test scripts: each prints ok/FAIL, the script's
exit code says whether any failed."""


class Checks:
    def __init__(self):
        self.passed = self.failed = 0

    def expect(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok   {name}")
        else:
            self.failed += 1
            print(f"FAIL {name}: {detail}")

    def exit_code(self):
        print(f"{self.passed} passed, {self.failed} failed")
        return 0 if self.failed == 0 else 1
