//! UPnP error codes and the error a device reports in a SOAP fault.
//!
//! A device refuses an action with an HTTP 500 whose SOAP `Fault` carries a `UPnPError`
//! element (`errorCode`, `errorDescription`): UDA 2.0 §3.2.5 "Action error response"
//! (UDA 1.1 §3 has the same format). Codes 401–606 are defined by UDA itself; 713–733 by the WANIPConnection and
//! WANPPPConnection service templates (IGD:1 and IGD:2). Callers match on [`ErrorCode`]
//! rather than on the free-text description, which differs between devices.

use std::fmt;

/// A `UPnPError` as carried in a SOAP fault: the numeric code and the device's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpnpError {
    /// `errorCode`: see [`ErrorCode`] for the ones the specifications define.
    pub code: u16,
    /// `errorDescription`: free text chosen by the device (may be empty).
    pub description: String,
}

impl UpnpError {
    /// An error for a known code, described by the code's name (what a gateway sends).
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code: code.code(),
            description: code.name().to_owned(),
        }
    }

    /// The known code this error carries, or `None` for a vendor or unassigned code.
    pub fn kind(&self) -> Option<ErrorCode> {
        ErrorCode::from_code(self.code)
    }
}

impl From<ErrorCode> for UpnpError {
    fn from(code: ErrorCode) -> Self {
        Self::new(code)
    }
}

impl fmt::Display for UpnpError {
    /// `error 718 ConflictInMappingEntry`; for a code we don't know, the device's
    /// description stands in for the name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind() {
            Some(kind) => write!(f, "error {} {}", self.code, kind.name()),
            None => write!(f, "error {} {}", self.code, self.description),
        }
    }
}

impl std::error::Error for UpnpError {}

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $name:ident = $code:literal, )*) => {
        /// The error codes of UDA 1.1 §3 and of the WANIPConnection:1/2 and
        /// WANPPPConnection:1 service templates, named as the specifications name them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u16)]
        pub enum ErrorCode {
            $( $(#[$doc])* $name = $code, )*
        }

        impl ErrorCode {
            /// Every known code, in numeric order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name,)*];

            /// The code for this number, or `None` if no specification we implement
            /// defines it.
            pub fn from_code(code: u16) -> Option<Self> {
                match code {
                    $( $code => Some(ErrorCode::$name), )*
                    _ => None,
                }
            }

            /// The numeric `errorCode`.
            pub fn code(self) -> u16 {
                self as u16
            }

            /// The name, as used in `errorDescription` by the IGD templates
            /// (e.g. `ConflictInMappingEntry`).
            pub fn name(self) -> &'static str {
                match self {
                    $( ErrorCode::$name => stringify!($name), )*
                }
            }
        }
    };
}

error_codes! {
    /// 401: no action by that name at this service (UDA).
    InvalidAction = 401,
    /// 402: not enough arguments, arguments in the wrong order, or of the wrong type (UDA).
    InvalidArgs = 402,
    /// 501: the action failed for a reason the device does not detail (UDA).
    ActionFailed = 501,
    /// 600: an argument value is invalid (UDA).
    ArgumentValueInvalid = 600,
    /// 601: an argument value is outside the allowed range (UDA).
    ArgumentValueOutOfRange = 601,
    /// 602: the action is optional and this device does not implement it (UDA).
    OptionalActionNotImplemented = 602,
    /// 603: the device ran out of memory (UDA).
    OutOfMemory = 603,
    /// 604: a person must act on the device (UDA).
    HumanInterventionRequired = 604,
    /// 605: a string argument is too long (UDA).
    StringArgumentTooLong = 605,
    /// 606: the caller is not allowed to invoke this action (UDA; IGD:2 uses it for
    /// mappings on behalf of another host or with Manage=1).
    ActionNotAuthorized = 606,
    /// 713: GetGenericPortMappingEntry index out of range: control points enumerate until
    /// they see it.
    SpecifiedArrayIndexInvalid = 713,
    /// 714: no mapping matches the given (remote host, external port, protocol).
    NoSuchEntryInArray = 714,
    /// 715: the remote host cannot be a wildcard (IGD:1).
    WildCardNotPermittedInSrcIP = 715,
    /// 716: the external port cannot be a wildcard (0).
    WildCardNotPermittedInExtPort = 716,
    /// 718: the mapping is held by another internal client.
    ConflictInMappingEntry = 718,
    /// 724: this device requires internal and external ports to be equal.
    SamePortValuesRequired = 724,
    /// 725: this device only supports permanent leases (lease 0; IGD:1 devices).
    OnlyPermanentLeasesSupported = 725,
    /// 726: the remote host must be the wildcard (empty).
    RemoteHostOnlySupportsWildcard = 726,
    /// 727: the external port must be the wildcard.
    ExternalPortOnlySupportsWildcard = 727,
    /// 728: no free port (or the mapping table is full) (IGD:2).
    NoPortMapsAvailable = 728,
    /// 729: the port is held by another mechanism (NAT-PMP, PCP, static rules) (IGD:2).
    ConflictWithOtherMechanisms = 729,
    /// 730: no mapping in the requested range (IGD:2).
    PortMappingNotFound = 730,
    /// 732: the internal port cannot be a wildcard (0) (IGD:2).
    WildCardNotPermittedInIntPort = 732,
    /// 733: inconsistent arguments, e.g. start port above end port (IGD:2).
    InconsistentParameters = 733,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for &code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(code.code()), Some(code));
        }
        assert_eq!(ErrorCode::ALL.len(), 24);
        assert_eq!(ErrorCode::ConflictInMappingEntry.code(), 718);
        assert_eq!(ErrorCode::from_code(999), None);
        assert_eq!(ErrorCode::from_code(0), None);
    }

    #[test]
    fn display() {
        let e = UpnpError {
            code: 718,
            description: "whatever the device says".into(),
        };
        assert_eq!(e.to_string(), "error 718 ConflictInMappingEntry");
        assert_eq!(e.kind(), Some(ErrorCode::ConflictInMappingEntry));
        let e = UpnpError {
            code: 899,
            description: "Vendor Thing".into(),
        };
        assert_eq!(e.to_string(), "error 899 Vendor Thing");
        assert_eq!(e.kind(), None);
        assert_eq!(
            UpnpError::from(ErrorCode::ActionNotAuthorized).to_string(),
            "error 606 ActionNotAuthorized"
        );
    }
}
