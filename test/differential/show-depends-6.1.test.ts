// kmod 30's modprobe is the oracle for the 6.1 tree (plain .ko files).
import { differentialSuite } from './suite';

differentialSuite('6.1');
