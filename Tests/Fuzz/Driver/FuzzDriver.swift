import CFuzzerDriver
import Foundation
import MBDataFuzzTargets

#if canImport(Glibc)
    import Glibc
#endif

/// `mbdata-fuzz TARGET [libFuzzer flags] [corpus folders]`: runs libFuzzer over one target.
/// Built only with `MBDATA_FUZZ=1` (see Tests/Fuzz/README.md and `make fuzz`).
@main
enum FuzzDriver {
    nonisolated(unsafe) static var target: FuzzTarget?

    static func main() {
        let arguments = CommandLine.arguments
        if arguments.count >= 2 && arguments[1] == "--list" { return printUsage() }
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        if arguments.count >= 2, let named = FuzzTarget.named(arguments[1]) {
            target = named
            // libFuzzer sees argv without the target name; the modes that run the binary
            // again (-merge, -fork, -jobs) pass that argv on, so the child finds its target
            // in the environment.
            setenv(targetVariable, named.name, 1)
            argc -= 1
            argv![1] = argv![0]
            argv = argv! + 1
        } else if let name = ProcessInfo.processInfo.environment[targetVariable], let named = FuzzTarget.named(name) {
            target = named
        } else {
            printUsage()
            exit(64)
        }
        let status = mbdata_fuzzer_run(&argc, &argv) { data, size in
            let bytes = size == 0 || data == nil ? Data() : Data(bytes: data!, count: size)
            _ = try? FuzzDriver.target!.run(bytes)
            return 0
        }
        exit(status)
    }

    static let targetVariable = "MBDATA_FUZZ_TARGET"

    static func printUsage() {
        print("usage: mbdata-fuzz TARGET [libFuzzer flags] [corpus folders]\ntargets:")
        for target in FuzzTarget.all { print("  \(target.name): \(target.summary)") }
    }
}
