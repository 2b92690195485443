package endpoints

import "errors"

// Reasons name the kinds of problem conversion finds in a Service or EndpointSlice.
// The controller uses them as the reason of the Warning Event on the object and as the
// reason label of switchyard_invalid_objects_total; like kube-proxy's Event reasons
// (FailedToStartServiceHealthcheck) they are CamelCase and stable.
const (
	ReasonInvalidName            = "InvalidName"
	ReasonInvalidClusterIP       = "InvalidClusterIP"
	ReasonInvalidExternalIP      = "InvalidExternalIP"
	ReasonInvalidLoadBalancerIP  = "InvalidLoadBalancerIP"
	ReasonInvalidSourceRange     = "InvalidSourceRange"
	ReasonInvalidAffinityTimeout = "InvalidAffinityTimeout"
	ReasonInvalidHealthCheckPort = "InvalidHealthCheckNodePort"
	ReasonInvalidPort            = "InvalidPort"
	ReasonDuplicatePort          = "DuplicatePort"
	ReasonNoServiceLabel         = "NoServiceLabel"
	ReasonInvalidEndpointAddress = "InvalidEndpointAddress"
	ReasonEndpointFamilyMismatch = "EndpointAddressFamilyMismatch"
	ReasonInvalidTriggerTime     = "InvalidTriggerTime"
	// ReasonInvalidObject is the reason of an error that carries no other.
	ReasonInvalidObject = "InvalidObject"
)

// InvalidError is one problem found while converting an object, with its reason.
type InvalidError struct {
	// Reason is one of the Reason constants.
	Reason string
	// Err says what is wrong, naming the object and the value.
	Err error
}

// Error returns the wrapped error's text: the reason is for machines.
func (e *InvalidError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *InvalidError) Unwrap() error { return e.Err }

// Reason returns the reason of the first problem in err (conversion joins several with
// errors.Join, in the order of the object's fields), or ReasonInvalidObject when err
// carries none. One reason per object keeps the metric at one increment per problem
// object, whatever the number of bad fields.
func Reason(err error) string {
	var invalid *InvalidError
	if errors.As(err, &invalid) {
		return invalid.Reason
	}
	return ReasonInvalidObject
}

// invalid wraps err with a reason.
func invalid(reason string, err error) error { return &InvalidError{Reason: reason, Err: err} }
