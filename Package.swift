// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "swift-vfio",
    products: [
        .library(name: "VFIO", targets: ["VFIO"]),
        .library(name: "VFIOSystem", targets: ["VFIOSystem"]),
        .library(name: "VFIOHost", targets: ["VFIOHost"]),
        .library(name: "VFIODeviceKit", targets: ["VFIODeviceKit"]),
        .library(name: "VFIOConformance", targets: ["VFIOConformance"]),
        .library(name: "VFIOUserWire", targets: ["VFIOUserWire"]),
        .library(name: "VFIOUserClient", targets: ["VFIOUserClient"]),
        .library(name: "VFIOUserServer", targets: ["VFIOUserServer"]),
        .library(name: "VFIOMigration", targets: ["VFIOMigration"]),
        .library(name: "NVMe", targets: ["NVMe"]),
        .library(name: "NVMeController", targets: ["NVMeController"]),
        .library(name: "NVMeDriver", targets: ["NVMeDriver"]),
        .executable(name: "vfio", targets: ["vfio"]),
        .executable(name: "vfio-bench", targets: ["vfio-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        .target(name: "CVFIO"),
        .target(name: "VFIO"),
        .target(name: "VFIOSystem", dependencies: ["VFIO", "CVFIO"]),
        .target(name: "VFIOHost", dependencies: ["VFIO", "VFIOSystem", "CVFIO"]),
        .target(name: "VFIODeviceKit", dependencies: ["VFIO"]),
        .target(name: "VFIOMigration", dependencies: ["VFIO"]),
        // NVMe: the specification as values (registers, queue entries, Identify, logs, PRPs),
        // shared by the controller model and a driver; NVMeController: the device model.
        .target(name: "NVMe"),
        .target(name: "NVMeController", dependencies: ["VFIO", "VFIOSystem", "VFIODeviceKit", "NVMe"]),
        // NVMeDriver: a userspace NVMe driver over any `VFIODevice` (no transport imported).
        .target(name: "NVMeDriver", dependencies: ["VFIO", "VFIOSystem", "CVFIO", "NVMe"]),
        .target(name: "VFIOConformance", dependencies: ["VFIO", "VFIOSystem", "CVFIO"]),
        // vfio-user: the wire (header, payload codecs, the socket with SCM_RIGHTS), the
        // client (a `VFIODevice`) and the server (hosts a `DeviceModel`).
        .target(name: "VFIOUserWire", dependencies: ["VFIO", "VFIOSystem", "CVFIO"]),
        .target(name: "VFIOUserClient", dependencies: ["VFIO", "VFIOSystem", "CVFIO", "VFIOUserWire"]),
        .target(
            name: "VFIOUserServer",
            dependencies: [
                "VFIO", "VFIOSystem", "CVFIO", "VFIOUserWire", "VFIODeviceKit",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "vfio",
            dependencies: [
                "VFIO", "CVFIO", "VFIOSystem", "VFIOHost", "VFIODeviceKit", "VFIOUserWire", "VFIOUserClient", "VFIOUserServer", "VFIOConformance", "VFIOMigration", "NVMeController", "NVMe", "NVMeDriver",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Benchmarks against the floor (Benchmarks/README.md): `swift run -c release vfio-bench`.
        .executableTarget(
            name: "vfio-bench",
            dependencies: ["VFIO", "CVFIO", "VFIOSystem", "VFIODeviceKit", "VFIOUserWire", "VFIOUserClient", "VFIOUserServer", "NVMe", "NVMeController", "NVMeDriver"],
            path: "Benchmarks/vfio-bench"
        ),
        // Tests: one target per module, all in one bundle (swift-vfioPackageTests.xctest,
        // which the guest runs with `--filter Guest`), with helpers two or more share in
        // TestSupport (a plain target: it reaches library code through public and package
        // access, never @testable, so it builds in any configuration).
        .target(
            name: "TestSupport",
            dependencies: ["VFIO", "VFIOSystem", "VFIOHost", "VFIODeviceKit", "VFIOUserClient", "VFIOUserServer",
                           .product(name: "Logging", package: "swift-log")],
            path: "Tests/TestSupport"
        ),
        .testTarget(name: "VFIOTests", dependencies: ["VFIO", "CVFIO", "TestSupport"]),
        .testTarget(name: "CVFIOTests", dependencies: ["CVFIO", "TestSupport"]),
        .testTarget(name: "VFIOSystemTests", dependencies: ["VFIOSystem", "VFIO", "CVFIO", "TestSupport"]),
        .testTarget(name: "VFIOHostTests", dependencies: ["VFIOHost", "VFIO", "VFIOSystem", "CVFIO", "TestSupport"]),
        .testTarget(name: "VFIODeviceKitTests", dependencies: ["VFIODeviceKit", "VFIO"]),
        .testTarget(name: "VFIOConformanceTests", dependencies: ["VFIOConformance", "VFIO", "VFIOSystem", "CVFIO", "VFIOHost", "VFIODeviceKit",
                                                                 "VFIOUserWire", "VFIOUserClient", "VFIOUserServer", "TestSupport"]),
        .testTarget(name: "VFIOUserWireTests", dependencies: ["VFIOUserWire", "VFIO", "VFIOSystem", "TestSupport"]),
        .testTarget(name: "VFIOUserClientTests", dependencies: ["VFIOUserClient", "VFIOUserWire", "VFIOUserServer", "VFIODeviceKit", "VFIO", "VFIOSystem", "CVFIO", "TestSupport"]),
        .testTarget(name: "VFIOUserServerTests", dependencies: ["VFIOUserServer", "VFIOUserWire", "VFIOUserClient", "VFIODeviceKit", "VFIOMigration", "VFIO", "VFIOSystem", "CVFIO", "TestSupport",
                                                                .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "VFIOMigrationTests", dependencies: ["VFIOMigration", "VFIO", "VFIODeviceKit", "VFIOUserWire", "VFIOUserClient", "VFIOUserServer", "VFIOSystem", "TestSupport"]),
        .testTarget(name: "NVMeTests", dependencies: ["NVMe"]),
        .testTarget(name: "NVMeControllerTests", dependencies: ["NVMeController", "NVMe", "VFIO", "VFIOSystem", "VFIODeviceKit", "VFIOMigration",
                                                                "VFIOUserClient", "VFIOUserServer", "TestSupport"]),
        .testTarget(name: "NVMeDriverTests", dependencies: ["NVMeDriver", "NVMeController", "NVMe", "VFIO", "VFIOSystem", "VFIOHost",
                                                            "VFIOUserClient", "TestSupport"]),
        // The `vfio` tool, run as a child process from the built executable next to the tests.
        .testTarget(name: "ToolTests", dependencies: ["VFIO", "VFIOSystem", "VFIOUserWire", "VFIOUserClient", "VFIOUserServer", "NVMe", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
