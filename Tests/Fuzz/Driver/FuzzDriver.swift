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
        guard arguments.count >= 2, arguments[1] != "--list", let chosen = FuzzTarget.named(arguments[1]) else {
            printUsage()
            if arguments.count >= 2 && arguments[1] == "--list" { return }
            exit(64)
        }
        target = chosen
        // libFuzzer sees argv without the target name.
        var argc = CommandLine.argc - 1
        var argv = CommandLine.unsafeArgv
        argv[1] = argv[0]
        var shifted: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv + 1
        let status = mbdata_fuzzer_run(&argc, &shifted) { data, size in
            let bytes = size == 0 || data == nil ? Data() : Data(bytes: data!, count: size)
            _ = try? FuzzDriver.target!.run(bytes)
            return 0
        }
        exit(status)
    }

    static func printUsage() {
        print("usage: mbdata-fuzz TARGET [libFuzzer flags] [corpus folders]\ntargets:")
        for target in FuzzTarget.all { print("  \(target.name): \(target.summary)") }
    }
}
