// kmod 30's modprobe is the oracle for the 6.12 tree (.ko.xz files).
import { differentialSuite } from './suite';

differentialSuite('6.12');
