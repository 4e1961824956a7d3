// The check runner HandleJavaCheck and HandleJavaAdmin share: one "ok"/"FAIL" line per check,
// "N passed, M failed" at the end, exit status 1 when any failed. -Dtrace=true prints the stack
// trace of a failed check.

final class Checks {
    private static int passed = 0;
    private static int failed = 0;

    private Checks() {}

    interface Check {
        String run() throws Exception;
    }

    /** Runs one check: it returns a detail line on success and throws on failure. */
    static void check(String name, Check check) {
        try {
            String detail = check.run();
            System.out.println("ok   " + name + (detail == null ? "" : ": " + detail));
            passed++;
        } catch (Throwable e) {
            System.out.println("FAIL " + name + ": " + e);
            if (Boolean.getBoolean("trace")) e.printStackTrace(System.out);
            failed++;
        }
    }

    static void require(boolean condition, String what) {
        if (!condition) throw new AssertionError(what);
    }

    /** Prints the totals and exits. */
    static void finish() {
        System.out.println(passed + " passed, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }
}
